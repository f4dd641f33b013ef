"""Corpus adapters: each turns a public anti-spoofing corpus, as shipped, into the project's manifest."""
