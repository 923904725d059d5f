"""neuralforecast's LSTM on the series examples/m3.py gives it, in a Python of its own.

    python examples/m3.py --groups monthly --neuralforecast-python ~/nf/bin/python

examples/m3.py writes the training parts to ``IN`` (an .npz: ``values``, ``lengths``, ``h``,
``input_size``, ``max_steps``, ``seed``) and runs this file with the named Python (one that has
neuralforecast; fastrnn is not needed there). It trains one global ``LSTM`` as the issue that
asked for the comparison measured it: ``LSTM(h, input_size, scaler_type="standard")`` with
neuralforecast's defaults (1,000 steps) and ``MQLoss(level=[80])``, so its median is the point
forecast and its q0.1-q0.9 interval can be scored, then writes ``OUT`` (an .npz: ``point``
(S, h), ``quantiles`` (S, h, 3), ``fit_seconds``, ``predict_seconds``, ``version``).
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np


def main(source: str, target: str) -> None:
    import pandas as pd
    from neuralforecast import NeuralForecast, __version__
    from neuralforecast.losses.pytorch import MQLoss
    from neuralforecast.models import LSTM

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = np.load(source)
    lengths, values = data["lengths"], data["values"]
    h, input_size = int(data["h"]), int(data["input_size"])
    frame = pd.DataFrame({"unique_id": np.repeat(np.arange(len(lengths)), lengths),
                          "ds": np.concatenate([np.arange(n) for n in lengths]),
                          "y": values})
    model = LSTM(h=h, input_size=input_size, scaler_type="standard",
                 loss=MQLoss(level=[80]), max_steps=int(data["max_steps"]),
                 random_seed=int(data["seed"]), enable_progress_bar=False,
                 enable_model_summary=False, logger=False, enable_checkpointing=False,
                 accelerator="cpu")
    nf = NeuralForecast(models=[model], freq=1)
    start = time.perf_counter()
    nf.fit(frame)
    fitted = time.perf_counter()
    out = nf.predict()
    predicted = time.perf_counter()
    out = out.sort_values(["unique_id", "ds"])
    columns = {name: next(c for c in out.columns if c.startswith("LSTM") and name in c)
               for name in ("lo-80", "median", "hi-80")}
    grid = {name: out[column].to_numpy().reshape(len(lengths), h)
            for name, column in columns.items()}
    np.savez(target, point=grid["median"],
             quantiles=np.stack([grid["lo-80"], grid["median"], grid["hi-80"]], axis=-1),
             fit_seconds=fitted - start, predict_seconds=predicted - fitted,
             version=__version__)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: m3_neuralforecast.py IN.npz OUT.npz (run by examples/m3.py)")
    main(sys.argv[1], sys.argv[2])
