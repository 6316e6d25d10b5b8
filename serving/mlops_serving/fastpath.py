"""An exact fast path for the class probabilities of random forests and extra-trees.

``ForestClassifier.predict_proba`` dispatches every tree through joblib (a config context, a
warnings filter and input validation per tree): with 100 trees that is ~5 ms per call whatever
the number of rows, most of it Python overhead. The same arithmetic without the dispatch — the
input cast to float32 once, each tree's ``tree_.predict`` summed in the estimator order, then
divided by the number of trees — costs ~0.3 ms for 1 row and gives bit-identical results.

It relies on scikit-learn internals (``estimators_[i].tree_.predict``), so it is used only when
:func:`forest_proba` recognises the estimator *and* the caller has checked on probe rows that it
returns exactly what ``predict_proba`` returns (see ``LoadedModel.enable_fast_path``); anything
else keeps the estimator's own method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

ProbaFn = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def forest_proba(estimator: Any) -> ProbaFn | None:
    """A fast ``predict_proba`` for a fitted single-output forest classifier, or None."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    if type(estimator) not in (RandomForestClassifier, ExtraTreesClassifier):
        return None
    if getattr(estimator, "n_outputs_", None) != 1 or not getattr(estimator, "estimators_", None):
        return None
    trees = [member.tree_ for member in estimator.estimators_]
    n_classes = int(estimator.n_classes_)
    count = len(trees)

    def predict_proba(features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x32 = np.ascontiguousarray(features, dtype=np.float32)
        total = np.zeros((x32.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict(x32)[:, :n_classes]
        total /= count
        return total

    return predict_proba


COMPILED_FORMAT = 1
"""Version of :class:`CompiledForest`'s stored arrays; a file of another version is not used."""

EVERY_NODE_LIMIT = 1 << 15
"""Nodes up to which :class:`CompiledForest` predicts a single row by deciding every node of the
forest at once (then walking the trees with one gather per level) instead of only the nodes on the
row's path (several numpy calls per level): one row of a 100-tree, 1,900-node forest in ~15 µs
instead of ~45 µs. From two rows on, the path walk is the cheaper."""


class CompiledForest:
    """A forest classifier reduced to its trees' node arrays: ``predict_proba`` and ``predict``
    with numpy alone, so that a cached version starts without importing scikit-learn, SciPy or
    skops (most of a cold start).

    It walks every tree of every row at once (a single row, after deciding every node:
    :data:`EVERY_NODE_LIMIT`), with the rules of scikit-learn's ``Tree.apply`` (the
    input cast to float32, ``x <= threshold`` compared in float64, a NaN going where the node's
    ``missing_go_to_left`` says), and sums the leaves' values in the estimator order, then divides
    by the number of trees, as :func:`forest_proba` does. Built by :meth:`from_estimator` only
    when it returns exactly what ``predict_proba`` and ``predict`` return on probe rows (the
    caller checks: see ``runtime``), and stored beside the version in the model cache.
    """

    def __init__(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        if int(arrays["format"]) != COMPILED_FORMAT:
            raise ValueError(f"compiled forest format {int(arrays['format'])}, expected {COMPILED_FORMAT}")
        self.arrays = arrays
        self.classes_ = arrays["classes"]
        self.n_classes_ = len(self.classes_)
        self.n_features_in_ = int(arrays["n_features_in"])
        if "feature_names_in" in arrays:
            self.feature_names_in_ = arrays["feature_names_in"]
        self.n_outputs_ = 1
        self._roots = arrays["roots"]
        self._feature = arrays["feature"]
        self._threshold = arrays["threshold"]
        self._left = arrays["left"]
        self._right = arrays["right"]
        self._missing_left = arrays["missing_left"]
        self._has_missing = bool(self._missing_left.any())
        self._children = np.stack([self._right, self._left], axis=1).ravel()  # node * 2 (+1: left)
        self._value = arrays["value"]
        self._depth = int(arrays["depth"])
        if not (len(self._feature) == len(self._threshold) == len(self._left) == len(self._right)
                == len(self._missing_left) == len(self._value)) or self._value.shape[1] != self.n_classes_:
            raise ValueError("compiled forest arrays of different lengths")
        if len(self._feature) and (
            int(self._left.min()) < 0 or int(self._left.max()) >= len(self._left) or int(self._right.min()) < 0
            or int(self._right.max()) >= len(self._right) or int(self._feature.min()) < 0
            or int(self._feature.max()) >= self.n_features_in_ or int(self._roots.max()) >= len(self._left)
        ):
            raise ValueError("compiled forest node index out of range")

    @classmethod
    def from_estimator(cls, estimator: Any) -> CompiledForest | None:
        """The arrays of a fitted single-output forest classifier (whose classes numpy can store
        without pickle), or None."""
        if forest_proba(estimator) is None:
            return None
        classes = np.asarray(estimator.classes_)
        if classes.dtype.kind not in "biufU":
            return None
        n_classes = len(classes)
        roots, feature, threshold, left, right, missing, value = [], [], [], [], [], [], []
        offset = depth = 0
        for member in estimator.estimators_:
            tree = member.tree_
            count = int(tree.node_count)
            is_leaf = tree.children_left == -1
            ids = np.arange(offset, offset + count, dtype=np.int64)
            roots.append(offset)
            # a leaf points at itself, so that walking a fixed number of levels stays on it
            feature.append(np.where(is_leaf, 0, tree.feature).astype(np.int64))
            threshold.append(np.asarray(tree.threshold, dtype=np.float64))
            left.append(np.where(is_leaf, ids, tree.children_left + offset).astype(np.int64))
            right.append(np.where(is_leaf, ids, tree.children_right + offset).astype(np.int64))
            missing_left = getattr(tree, "missing_go_to_left", None)
            missing.append(np.zeros(count, dtype=bool) if missing_left is None
                           else np.asarray(missing_left, dtype=bool) & ~is_leaf)
            value.append(np.asarray(tree.value[:, 0, :n_classes], dtype=np.float64))
            depth = max(depth, int(tree.max_depth))
            offset += count
        arrays: dict[str, npt.NDArray[Any]] = {
            "format": np.asarray(COMPILED_FORMAT), "classes": classes,
            "n_features_in": np.asarray(int(estimator.n_features_in_)),
            "roots": np.asarray(roots, dtype=np.int64), "feature": np.concatenate(feature),
            "threshold": np.concatenate(threshold), "left": np.concatenate(left), "right": np.concatenate(right),
            "missing_left": np.concatenate(missing), "value": np.ascontiguousarray(np.concatenate(value)),
            "depth": np.asarray(depth),
        }
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            names = np.asarray(names)
            if names.dtype.kind != "U":
                return None
            arrays["feature_names_in"] = names
        return cls(arrays)

    def save(self, path: Any) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, allow_pickle=False, **self.arrays)

    @classmethod
    def load(cls, path: Any) -> CompiledForest:
        with np.load(path, allow_pickle=False) as data:
            return cls({key: data[key] for key in data.files})

    def predict_proba(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x32 = np.ascontiguousarray(features, dtype=np.float32)
        if x32.ndim != 2 or x32.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x32.shape[-1] if x32.ndim else 0} features, but the forest is expecting "
                             f"{self.n_features_in_} features as input")
        if x32.shape[0] == 1 and len(self._feature) <= EVERY_NODE_LIMIT:
            nodes = self._leaf_every_node(x32)
        else:
            nodes = self._leaves_by_path(x32)
        values = self._value.take(nodes.T, axis=0)  # trees × rows × classes
        # the running sum over the trees, in the estimator order, as forest_proba adds them (a plain
        # sum over that axis may add in another order: not bit-identical)
        total: npt.NDArray[np.float64] = np.add.accumulate(values, axis=0)[-1]
        total /= len(self._roots)
        return total

    def _go_left(self, x: npt.NDArray[np.float32], nodes: npt.NDArray[np.int64] | None) -> npt.NDArray[np.bool_]:
        """Whether ``x`` (the values of the nodes' features) goes left at ``nodes`` (None: every node)."""
        threshold = self._threshold if nodes is None else self._threshold.take(nodes)
        go_left: npt.NDArray[np.bool_] = x <= threshold  # NaN: right, unless the node sends missing left
        if self._has_missing:
            go_left |= np.isnan(x) & (self._missing_left if nodes is None else self._missing_left.take(nodes))
        return go_left

    def _leaves_by_path(self, x32: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """The leaf of every row in every tree (rows × trees), deciding only the nodes on the paths."""
        rows, width = x32.shape
        flat = x32.ravel()
        nodes = np.repeat(self._roots[None, :], rows, axis=0)
        offsets = np.arange(0, rows * width, width, dtype=np.int64)[:, None] if rows > 1 else None
        for _ in range(self._depth):
            feature = self._feature.take(nodes)
            go_left = self._go_left(flat.take(feature if offsets is None else feature + offsets), nodes)
            nodes = self._children.take(nodes * 2 + go_left)
        return nodes

    def _leaf_every_node(self, x32: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """The same leaves for a single row (1 × trees), every node of the forest decided at once."""
        following = np.where(self._go_left(x32[0].take(self._feature), None), self._left, self._right)
        nodes = self._roots
        for _ in range(self._depth):
            nodes = following.take(nodes)
        return nodes[None, :]

    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        return np.asarray(self.classes_.take(np.argmax(self.predict_proba(features), axis=1)))


SMALL_BATCH = 32
"""Rows up to which :class:`CompiledForest` beats the trees' own ``predict`` (one numpy pass per
tree level instead of one call per tree); above it, per row, scikit-learn's compiled code wins."""


def by_rows(small: ProbaFn, large: ProbaFn) -> ProbaFn:
    """``small`` for batches of up to :data:`SMALL_BATCH` rows, ``large`` above (both exact)."""

    def predict_proba(features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return small(features) if len(features) <= SMALL_BATCH else large(features)

    return predict_proba
