"""The seed's architecture, for `make bench` only: the yardstick the served path is measured against.

One FastAPI process loads the model and decodes, extracts features and runs the detector inside
each request (`POST /predict-file/`, multipart field `file`), with every torch thread the machine
has; requests therefore run one at a time. It scores with the same model/ code as TorchServe, so the
comparison is about serving architecture only.

    BENCH_CHECKPOINT=artifacts/default uvicorn --factory scripts.bench_inprocess:create_app --port 8010
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, UploadFile

from model.audio import AudioDecodeError
from model.inference import AudioDetector
from model.vad import speech_check_enabled

CHECKPOINT_ENV = "BENCH_CHECKPOINT"
UNPROCESSABLE = 422


def create_app() -> FastAPI:
    """The app, with the model of $BENCH_CHECKPOINT loaded (a factory: importing this module loads nothing)."""
    app = FastAPI(title="in-process baseline (benchmark only)")
    detector = AudioDetector.from_checkpoint(Path(os.environ[CHECKPOINT_ENV]))
    check_speech = speech_check_enabled()  # as serving does

    @app.get("/")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict-file/")
    async def predict_file(file: Annotated[UploadFile, File()]) -> dict[str, object]:
        try:
            score = detector.score_audio(await file.read(), check_speech)
        except AudioDecodeError as error:
            raise HTTPException(UNPROCESSABLE, str(error)) from error
        return {"prediction": score.probability_real, "label": score.label, "filename": file.filename}

    return app
