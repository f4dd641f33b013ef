"""Shared audio → features → detector code, used unchanged by training and serving.

Nothing in this package imports training, TorchServe or FastAPI code.
"""
