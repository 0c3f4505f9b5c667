"""What the example pipelines share: where their data lives, and a cache for trained models.

Data comes from ``$MLOC_DATA_DIR`` (default ``../shared/datasets`` next to the repository root);
a missing file raises ``DataMissing`` saying where it was looked for and where to get it.

Trained models are cached under ``$MLOC_CACHE_DIR`` (default ``~/.cache/mloc/examples``), keyed
by a hash of the training function's source, its parameters and the library versions, so
changing how a model is trained retrains it and importing an example twice does not.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataMissing(FileNotFoundError):
    """A dataset an example needs is not where ``MLOC_DATA_DIR`` points."""


def data_dir() -> Path:
    """The datasets folder: ``$MLOC_DATA_DIR``, else ``../shared/datasets`` from the repo root."""
    env = os.environ.get("MLOC_DATA_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "datasets").resolve()


def data_file(relative: str, source_url: str) -> Path:
    """The path of one dataset file, or a ``DataMissing`` naming where to put it."""
    path = data_dir() / relative
    if not path.is_file():
        raise DataMissing(
            f"dataset file {path} not found. Set MLOC_DATA_DIR to the folder holding "
            f"{relative!r} (default: ../shared/datasets next to the repository); "
            f"the data is available from {source_url}")
    return path


def fast_mode() -> bool:
    """``MLOC_FAST_EXAMPLES=1``: train smaller models (for the test suite)."""
    return os.environ.get("MLOC_FAST_EXAMPLES", "") not in ("", "0")


def random_split(data, test_share: float = 0.2, seed: int = 0):
    """``(train, test)``: a seeded shuffle of ``data`` with the last ``test_share`` held out,
    each with a fresh 0..n-1 index."""
    shuffled = data.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_train = int((1.0 - test_share) * len(shuffled))
    return (shuffled.iloc[:n_train].reset_index(drop=True),
            shuffled.iloc[n_train:].reset_index(drop=True))


def planning_split(train, fit_share: float = 0.6):
    """``(fit, planning)``: the model and its lookup tables are fitted on ``fit``; ``planning``
    stays unseen, so mloc's cascade planner can certify its agreement on rows like the ones it
    will serve (a model is over-confident on its own training rows)."""
    n_fit = int(fit_share * len(train))
    return train.iloc[:n_fit], train.iloc[n_fit:]


def cache_dir() -> Path:
    env = os.environ.get("MLOC_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "mloc"
    return base / "examples"


def _versions() -> str:
    import lightgbm
    import numpy
    import sklearn
    return (f"numpy={numpy.__version__} sklearn={sklearn.__version__} "
            f"lightgbm={lightgbm.__version__}")


def cached_model(name: str, train: Callable[..., Any], *, depends_on: tuple = (),
                 data_path: Path | None = None, **params) -> Any:
    """``train(**params)``, or its pickled result from an earlier run with the same inputs.

    The key hashes the source of ``train`` and of the functions in ``depends_on`` (the pipeline
    whose features it trains on), ``params``, the library versions (pickles do not travel
    between them) and the data file's content.
    """
    h = hashlib.sha256()
    for fn in (train, *depends_on):
        h.update(inspect.getsource(fn).encode())
    h.update(repr(sorted(params.items())).encode())
    h.update(_versions().encode())
    if data_path is not None:
        # the content, not the modification time: a copied or re-extracted dataset is the
        # same data and must not retrain (hashing a few MB takes milliseconds)
        with open(data_path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    path = cache_dir() / f"{name}-{h.hexdigest()[:16]}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                return pickle.load(f)
        except Exception:  # noqa: BLE001 -- a truncated or stale cache file: retrain
            pass
    result = train(**params)
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename, so a concurrent reader never sees half a file
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(result, f)
    os.replace(tmp, path)
    return result


def serving_threads(model):
    """A scikit-learn LightGBM model trained with ``n_jobs=1``, set to predict on every core
    (or on one in fast mode).

    The examples train on one thread: on a small machine shared with other work, two OpenMP
    threads made training 10-20x slower (each waits at every barrier for a thread that is not
    running). Prediction uses all cores, so the original pipelines are measured as they would
    be served, beside mloc's compiled ones, which also use every core. In fast mode (the test
    suite and ``--quick``: small models, never read for speed) it stays one thread: quick runs
    two benchmarks at once, and the cascade planner refits the model with its settings.
    """
    model.set_params(n_jobs=1 if fast_mode() else -1)
    return model


class _Captured(Exception):
    def __init__(self, X):
        super().__init__("feature matrix captured")
        self.X = X


class _FeatureTap:
    """Stands in for a model: its first call hands back the feature matrix it was given."""

    def _capture(self, X, *args, **kwargs):
        raise _Captured(X)

    predict = predict_proba = decision_function = _capture


def feature_matrix(pipeline: Callable, model_global: str, *args, **kwargs):
    """The matrix ``pipeline`` feeds its model (the module global ``model_global``).

    Training then uses the very code that serves predictions, so training and serving features
    cannot drift apart. The global is restored afterwards.
    """
    scope = pipeline.__globals__
    missing = object()
    saved = scope.get(model_global, missing)
    scope[model_global] = _FeatureTap()
    try:
        pipeline(*args, **kwargs)
    except _Captured as cap:
        return cap.X
    finally:
        if saved is missing:
            del scope[model_global]
        else:
            scope[model_global] = saved
    raise RuntimeError(f"{pipeline.__name__} never called {model_global}")
