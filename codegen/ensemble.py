"""Library-neutral data model of a tree ensemble.

Every converter (LightGBM today, scikit-learn later) produces an :class:`Ensemble`; every
backend (the llvmlite emitter, the NumPy reference evaluator in this module) consumes one.
The semantics below are the contract between them, so they are spelled out exactly.

Trees
-----
A :class:`Tree` stores its internal nodes as flat, equally long arrays indexed by node id
(``0`` is the root).  Children use LightGBM's encoding: ``child >= 0`` is an internal node id,
``child < 0`` is the leaf ``~child`` (i.e. ``-child - 1``).  A tree with a single leaf has no
internal nodes.

Decision at internal node ``i`` for the (already cast, see ``input_cast``) feature value ``x``
of feature ``feature[i]``:

* ``kind[i] == NUMERIC`` (LightGBM's ``NumericalDecision``):

  1. if ``x`` is NaN and ``missing_type[i] != NAN``: ``x = 0.0``;
  2. if (``missing_type[i] == ZERO`` and ``|x| <= ensemble.zero_threshold``) or
     (``missing_type[i] == NAN`` and ``x`` is NaN): go ``default_left[i]`` ? left : right;
  3. otherwise go left iff ``x <= threshold[i]``.

  scikit-learn's rule ("NaN goes ``missing_go_to_left``, else ``x <= threshold``") is
  ``missing_type = NAN`` with ``default_left = missing_go_to_left``.

* ``kind[i] == CATEGORICAL`` (LightGBM's ``CategoricalDecision``): the category set is the
  bitset ``cat_words[cat_begin[i]:cat_end[i]]`` (uint32 words, bit ``c % 32`` of word
  ``c // 32`` set means category ``c`` goes left).

  1. if ``x`` is NaN: go ``default_left[i]`` ? left : right (LightGBM: always right);
  2. ``c = trunc(x)``; if ``c`` is not in ``[0, 32 * n_words)`` (this includes negative values
     and values beyond int32 range, which LightGBM's ``static_cast<int>`` makes negative):
     go right;
  3. go left iff bit ``c`` is set.

``threshold`` is float64 and is compared in float64.

Ensemble
--------
``zero_threshold``: LightGBM reads every input with ``|x| <= kZeroThreshold`` as exactly 0.0
(its predictor drops such values when copying a row) and also uses that bound for the ZERO
missing type; set it to ``0.0`` for libraries that do neither.

``input_cast``: ``"float64"`` (LightGBM) or ``"float32"`` (scikit-learn trees cast ``X`` to
float32 before comparing it, in float64, with their thresholds).

Raw score of output ``k``, in this order (the order matters for bit-exact results)::

    acc[k] = base_score[k]
    for tree in trees (in list order):
        for j in range(tree.leaf_width):
            acc[tree.output + j] += tree.leaf_value[leaf, j]
    if average and average_raw: acc[k] /= (number of trees adding to output k)

Prediction: ``transform`` (see :data:`TRANSFORMS`) applied to the raw-score vector, after
that division when ``average`` is set.  ``average_raw=False`` keeps raw scores as plain
sums: LightGBM's random-forest mode averages only its transformed predictions.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np


class MissingType(enum.IntEnum):
    """How a numeric node treats missing values (LightGBM's ``MissingType``)."""

    NONE = 0
    ZERO = 1
    NAN = 2


class DecisionKind(enum.IntEnum):
    NUMERIC = 0
    CATEGORICAL = 1


#: LightGBM's ``kZeroThreshold``: declared ``const double = 1e-35f``, i.e. float32(1e-35).
LIGHTGBM_ZERO_THRESHOLD = float(np.float32(1e-35))

#: Output transforms: name -> description.  ``param`` is the transform's parameter.
TRANSFORMS = {
    "identity": "y = raw",
    "sigmoid": "y[k] = 1 / (1 + exp(-param * raw[k])) for every output k",
    "softmax": "m = max(raw); e[k] = exp(raw[k] - m); y[k] = e[k] / sum(e) (sum in order)",
    "exp": "y[k] = exp(raw[k])",
    "signed_square": "y[k] = sign(raw[k]) * raw[k] * raw[k]",
    "log1p_exp": "y[k] = log1p(exp(raw[k]))",
}


@dataclass
class Tree:
    """One tree as flat node arrays (see the module docstring for the decision rule)."""

    feature: np.ndarray  # int32 (n_internal,)
    threshold: np.ndarray  # float64 (n_internal,)
    kind: np.ndarray  # uint8 (n_internal,), DecisionKind
    missing_type: np.ndarray  # uint8 (n_internal,), MissingType
    default_left: np.ndarray  # bool (n_internal,)
    left: np.ndarray  # int32 (n_internal,), child encoding: >= 0 node, < 0 leaf ~child
    right: np.ndarray  # int32 (n_internal,)
    leaf_value: np.ndarray  # float64 (n_leaves, leaf_width)
    output: int = 0  # first output this tree adds to
    cat_begin: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    cat_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    cat_words: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))

    def __post_init__(self):
        n = len(self.feature)
        self.feature = np.asarray(self.feature, np.int32)
        self.threshold = np.asarray(self.threshold, np.float64)
        self.kind = np.asarray(self.kind, np.uint8)
        self.missing_type = np.asarray(self.missing_type, np.uint8)
        self.default_left = np.asarray(self.default_left, bool)
        self.left = np.asarray(self.left, np.int32)
        self.right = np.asarray(self.right, np.int32)
        lv = np.asarray(self.leaf_value, np.float64)
        self.leaf_value = lv.reshape(len(lv), -1) if lv.ndim == 1 else lv
        if len(self.cat_begin) == 0:
            self.cat_begin = np.zeros(n, np.int32)
            self.cat_end = np.zeros(n, np.int32)
        self.cat_begin = np.asarray(self.cat_begin, np.int32)
        self.cat_end = np.asarray(self.cat_end, np.int32)
        self.cat_words = np.asarray(self.cat_words, np.uint32)

    @property
    def n_internal(self) -> int:
        return len(self.feature)

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_value)

    @property
    def leaf_width(self) -> int:
        return self.leaf_value.shape[1]

    def validate(self, n_features: int) -> None:
        """Raise ValueError if the arrays do not describe one well-formed tree."""
        n, nl = self.n_internal, self.n_leaves
        if nl != n + 1:
            raise ValueError(f"tree has {n} internal nodes but {nl} leaves (need {n + 1})")
        arrays = (self.threshold, self.kind, self.missing_type, self.default_left,
                  self.left, self.right, self.cat_begin, self.cat_end)
        if any(len(a) != n for a in arrays):
            raise ValueError("tree node arrays have different lengths")
        if n and (self.feature.min() < 0 or self.feature.max() >= n_features):
            raise ValueError(f"tree splits on a feature outside [0, {n_features})")
        if n == 0:
            return  # a single leaf
        children = np.concatenate([self.left, self.right])
        nodes = np.sort(children[children >= 0])
        leaves = np.sort(~children[children < 0])
        if not (np.array_equal(nodes, np.arange(1, n)) and np.array_equal(leaves, np.arange(nl))):
            raise ValueError("tree children do not reference every node and leaf exactly once")

    def depth(self) -> int:
        """Maximum number of decisions on a root-to-leaf path."""
        if self.n_internal == 0:
            return 0
        best, stack = 0, [(0, 1)]
        while stack:
            node, d = stack.pop()
            best = max(best, d)
            for c in (self.left[node], self.right[node]):
                if c >= 0:
                    stack.append((int(c), d + 1))
        return best


@dataclass
class Ensemble:
    """A whole model: trees plus how their leaf values become a prediction."""

    trees: list
    n_features: int
    n_outputs: int = 1
    base_score: np.ndarray = None  # float64 (n_outputs,), default zeros
    average: bool = False
    average_raw: bool = True
    input_cast: str = "float64"
    zero_threshold: float = 0.0
    transform: str = "identity"
    transform_param: float = 1.0
    # softmax and exp call NumPy's exp (scikit-learn) instead of the C library's (LightGBM);
    # the two differ in the last bit on CPUs where NumPy has its own SIMD exp (AVX-512)
    numpy_exp: bool = False
    feature_names: list = None
    source: str = ""  # free text: where the model came from (for messages)

    def __post_init__(self):
        if self.base_score is None:
            self.base_score = np.zeros(self.n_outputs)
        self.base_score = np.asarray(self.base_score, np.float64).reshape(self.n_outputs)
        self.validate()

    def validate(self) -> None:
        if self.input_cast not in ("float64", "float32"):
            raise ValueError(f"input_cast must be 'float64' or 'float32', not {self.input_cast!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; known: {sorted(TRANSFORMS)}")
        if self.n_features < 1 or self.n_outputs < 1:
            raise ValueError("an ensemble needs at least one feature and one output")
        for t in self.trees:
            t.validate(self.n_features)
            if t.output < 0 or t.output + t.leaf_width > self.n_outputs:
                raise ValueError(f"a tree adds to outputs beyond n_outputs={self.n_outputs}")

    def trees_per_output(self) -> np.ndarray:
        """Divisor of each output when averaging: its number of trees (1 if it has none)."""
        count = np.zeros(self.n_outputs, np.int64)
        for t in self.trees:
            count[t.output:t.output + t.leaf_width] += 1
        return np.maximum(count, 1)

    @property
    def n_nodes(self) -> int:
        return sum(t.n_internal + t.n_leaves for t in self.trees)


# --------------------------------------------------------------------------------------------
# Reference evaluator: the data model's semantics written plainly (slow; used by tests).


def _cast_inputs(ens: Ensemble, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, np.float64)
    if ens.input_cast == "float32":
        X = X.astype(np.float32).astype(np.float64)
    if ens.zero_threshold > 0:
        X = np.where(np.abs(X) <= ens.zero_threshold, 0.0, X)
    return X


def _decide_left(ens: Ensemble, tree: Tree, i: int, x: float) -> bool:
    if tree.kind[i] == DecisionKind.CATEGORICAL:
        if np.isnan(x):
            return bool(tree.default_left[i])
        words = tree.cat_words[tree.cat_begin[i]:tree.cat_end[i]]
        if not (-1.0 < x < 32.0 * len(words)):
            return False
        c = int(x)
        return bool((int(words[c // 32]) >> (c % 32)) & 1)
    mt = tree.missing_type[i]
    if np.isnan(x) and mt != MissingType.NAN:
        x = 0.0
    if (mt == MissingType.ZERO and abs(x) <= ens.zero_threshold) or (
            mt == MissingType.NAN and np.isnan(x)):
        return bool(tree.default_left[i])
    return bool(x <= tree.threshold[i])


def leaf_index(ens: Ensemble, tree: Tree, row: np.ndarray) -> int:
    node = 0 if tree.n_internal else -1
    while node >= 0:
        left = _decide_left(ens, tree, node, row[tree.feature[node]])
        node = int(tree.left[node] if left else tree.right[node])
    return ~node


def reference_predict(ens: Ensemble, X: np.ndarray, raw_score: bool = False) -> np.ndarray:
    """Evaluate ``ens`` on rows ``X`` exactly as the module docstring specifies (slow)."""
    X = _cast_inputs(ens, X)
    out = np.empty((len(X), ens.n_outputs))
    per_output = ens.trees_per_output()
    for r, row in enumerate(X):
        acc = ens.base_score.copy()
        for t in ens.trees:
            leaf = leaf_index(ens, t, row)
            for j in range(t.leaf_width):
                acc[t.output + j] += t.leaf_value[leaf, j]
        averaged = acc / per_output if ens.average else acc
        if raw_score:
            out[r] = averaged if ens.average_raw else acc
        else:
            out[r] = apply_transform(ens, averaged)
    return out


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def apply_transform(ens: Ensemble, raw: np.ndarray) -> np.ndarray:
    """Apply ``ens.transform`` to one raw-score vector (float64, in the documented order)."""
    name, p = ens.transform, ens.transform_param
    if name == "identity":
        return raw.copy()
    if name == "sigmoid":
        return np.array([1.0 / (1.0 + _exp(-p * v)) for v in raw])
    if name == "exp":
        if ens.numpy_exp:
            with np.errstate(over="ignore"):
                return np.exp(np.asarray(raw, np.float64))
        return np.array([_exp(v) for v in raw])
    if name == "signed_square":
        return np.array([float(np.sign(v)) * v * v for v in raw])
    if name == "log1p_exp":
        return np.array([math.log1p(_exp(v)) for v in raw])
    if name == "softmax":
        m = max(raw)
        if ens.numpy_exp:
            with np.errstate(over="ignore"):
                e = list(np.exp(np.asarray(raw, np.float64) - m))
        else:
            e = [_exp(v - m) for v in raw]
        s = 0.0
        for v in e:
            s += v
        return np.array([v / s for v in e])
    raise ValueError(f"unknown transform {name!r}")
