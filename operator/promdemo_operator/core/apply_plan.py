"""The apply plan: the merge patch that brings one child to its desired state (pure).

No I/O here: `kube.Kube.apply` reads or is given the object in the cluster and
sends what `plan_patch` returns. The plan is a three-way merge of

- the **desired** object the renderer produced,
- the **actual** object in the cluster,
- the **last-applied key tree**: which keys the operator set at its previous apply,
  recorded on the child in the annotation `promdemo.dev/last-applied` (keys only,
  no values; see `managed_keys`).

The merged object is the actual one with every field the operator wants set to the
desired value, every field it set last time and no longer wants removed, and
**everything else kept**: labels and annotations other tools add (Argo CD's
tracking label, `kubectl annotate`), server defaults, a sidecar container or an env
var another controller added to the Deployment. Lists whose items all carry a
`name` (containers, env, ports, volumes, rule groups) are merged item by item by
that name, as Kubernetes' strategic merge does; other lists (a ServiceMonitor's
endpoints, a rule group's rules) belong to the operator whole. The patch is the
difference between the actual object and the merged one, as a JSON merge patch
(RFC 7386: a list is sent whole, `null` deletes a key); None when they are equal,
so a resync of a converged child writes nothing.

`ownerReferences` are set when a child is created and never patched: changing them
on an existing object is adopting it, which needs `delete` on that resource under
OwnerReferencesPermissionEnforcement. An existing object that this PromDemo does
not control is not touched at all (`controlled_by`).

A Secret's data is never rewritten once it holds a key (the reset token is created
once and never rotated by an update) and never recorded in the annotation.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from typing import Any

#: The annotation on every child that records which keys the operator set (see managed_keys).
LAST_APPLIED_ANNOTATION = "promdemo.dev/last-applied"

#: A leaf of the key tree: a scalar, or a list the operator owns whole.
_LEAF = 1

#: The node of a list merged by item name: {"$named": {item name: key tree of the item}}.
_NAMED = "$named"

#: Fields never recorded, so never pruned: a Secret's data is created once and never
#: rewritten (the reset token); recording it would also copy nothing useful.
_UNTRACKED = {"Secret": ("data", "stringData")}

#: The metadata the operator manages; the rest (uid, ownerReferences, finalizers, ...)
#: is the server's or set once at creation.
_MANAGED_METADATA = ("labels", "annotations")


# -- reading objects -------------------------------------------------------------------------


def controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when `obj` has a controller owner reference to the object with `uid`."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(
        isinstance(r, Mapping) and r.get("uid") == uid and r.get("controller") is True for r in refs
    )


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when `obj` has any owner reference to the object with `uid`."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    """A Secret's value for `key` (from `data`, or `stringData` as some emulators keep it)."""
    raw = (secret.get("data") or {}).get(key)
    if raw:
        try:
            return base64.b64decode(raw).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    value = (secret.get("stringData") or {}).get(key)
    return str(value) if value else None


def normalize_secret(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`stringData` → base64 `data`: what a server returns, so the comparison is fair."""
    out = dict(obj)
    if out.get("kind") != "Secret" or not out.get("stringData"):
        return out
    data = dict(out.get("data") or {})
    for key, value in out.pop("stringData").items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    out["data"] = data
    return out


def managed_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object the apply merges: labels, annotations and all but metadata/status."""
    meta = obj.get("metadata") or {}
    view: dict[str, Any] = {
        k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind", "status")
    }
    view["metadata"] = {k: meta[k] for k in _MANAGED_METADATA if k in meta}
    return view


# -- what the operator applied last (the key tree) ---------------------------------------------


def _named_items(value: Any) -> dict[str, Any] | None:
    """{name: item} when `value` is a non-empty list of maps with distinct string names."""
    if not isinstance(value, list) or not value:
        return None
    items: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            return None
        if item["name"] in items:
            return None
        items[item["name"]] = item
    return items


def managed_keys(view: Any) -> Any:
    """The key tree of a managed view: maps → dicts of their keys, named lists → their items
    by name, anything else → 1.

    Why key paths and not the desired object itself (as `kubectl apply`'s
    last-applied-configuration): deleting a dropped key needs only to know that the
    operator set it, not its value. The tree is small, never copies a Secret's data
    or the rule groups into an annotation, and a change of any value but a key set
    leaves it equal, so it rarely changes at all. Maps are kept apart from leaves so
    that a map the operator set but another actor added keys to is emptied of the
    operator's keys only, not deleted with the other keys.
    """
    if isinstance(view, Mapping):
        return {str(k): managed_keys(v) for k, v in view.items()}
    named = _named_items(view)
    if named is not None:
        return {_NAMED: {name: managed_keys(item) for name, item in named.items()}}
    return _LEAF


def encode_managed_keys(tree: Mapping[str, Any]) -> str:
    """The annotation's value: canonical JSON, so equal trees give equal strings."""
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def _valid_tree(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _valid_tree(v) for k, v in node.items()}
    return _LEAF


def decode_managed_keys(text: Any) -> dict[str, Any]:
    """The tree recorded in an annotation; {} when absent or not a tree (nothing is pruned)."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        tree = json.loads(text)
    except ValueError:
        return {}
    return _valid_tree(tree) if isinstance(tree, Mapping) else {}


def _is_named_node(node: Any) -> bool:
    return isinstance(node, Mapping) and set(node) == {_NAMED} and isinstance(node[_NAMED], Mapping)


def _tracked_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The managed view whose keys are recorded: without our annotation and untracked fields."""
    view = managed_view(obj)
    for key in _UNTRACKED.get(str(obj.get("kind")), ()):
        view.pop(key, None)
    annotations = view["metadata"].get("annotations")
    if isinstance(annotations, Mapping) and LAST_APPLIED_ANNOTATION in annotations:
        rest = {k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION}
        if rest:
            view["metadata"] = {**view["metadata"], "annotations": rest}
        else:
            view["metadata"] = {k: v for k, v in view["metadata"].items() if k != "annotations"}
    return view


def with_last_applied(desired: Mapping[str, Any]) -> dict[str, Any]:
    """`desired` with the annotation recording its own managed keys (what is created/patched)."""
    out = dict(desired)
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED_ANNOTATION] = encode_managed_keys(managed_keys(_tracked_view(desired)))
    meta["annotations"] = annotations
    out["metadata"] = meta
    return out


# -- the three-way merge ------------------------------------------------------------------


def _owned_entirely(node: Any, actual: Any) -> bool:
    """True when `actual` holds only what the key tree `node` says the operator set."""
    if _is_named_node(node):
        if not isinstance(actual, list):
            return True
        items = node[_NAMED]
        return all(
            isinstance(item, Mapping)
            and item.get("name") in items
            and _owned_entirely(items[item["name"]], item)
            for item in actual
        )
    if not isinstance(node, Mapping) or not isinstance(actual, Mapping):
        return True  # a scalar or list the operator set (or its map, replaced by a value)
    return all(k in node and _owned_entirely(node[k], v) for k, v in actual.items())


def merge_desired(actual: Any, desired: Any, last: Any) -> Any:
    """The value a field should have: `actual` with the operator's fields set to `desired`
    and the fields it set last time (`last`, a key tree) and no longer wants removed.

    Everything else in `actual` is kept. A dropped map goes whole only when it holds
    nothing but the operator's keys; a dropped item of a named list goes whole.
    """
    if isinstance(desired, Mapping):
        out = dict(actual) if isinstance(actual, Mapping) else {}
        node = last if isinstance(last, Mapping) and not _is_named_node(last) else {}
        for key, value in desired.items():
            out[key] = merge_desired(out.get(key), value, node.get(key))
        for key, child in node.items():
            if key in desired or key not in out:
                continue
            if _owned_entirely(child, out[key]):
                del out[key]
            elif isinstance(child, Mapping):
                out[key] = merge_desired(out[key], {} if not _is_named_node(child) else [], child)
        return out
    if isinstance(desired, list):
        wanted = _named_items(desired)
        if wanted is None:
            if _is_named_node(last) and isinstance(actual, list) and not desired:
                # An emptied named list: drop our items, keep the others'.
                ours = last[_NAMED]
                return [
                    copy.deepcopy(i)
                    for i in actual
                    if not (isinstance(i, Mapping) and i.get("name") in ours)
                ]
            return copy.deepcopy(desired)
        ours = last[_NAMED] if _is_named_node(last) else {}
        merged: list[Any] = []
        seen: set[str] = set()
        for item in actual if isinstance(actual, list) else []:
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(name, str) and name in wanted:
                if name not in seen:  # a duplicate of one of ours is dropped
                    merged.append(merge_desired(item, wanted[name], ours.get(name)))
                    seen.add(name)
            elif isinstance(name, str) and name in ours:
                continue  # ours last time, no longer wanted
            else:
                merged.append(copy.deepcopy(item))  # another writer's item
        merged.extend(copy.deepcopy(item) for name, item in wanted.items() if name not in seen)
        return merged
    return copy.deepcopy(desired)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: 1 == 1.0, but True is not 1."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def merge_patch_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `before` into `after` (lists sent whole)."""
    patch: dict[str, Any] = {}
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(before[key], Mapping):
            nested = merge_patch_between(before[key], value)
            if nested:
                patch[key] = nested
        elif not same(before[key], value):
            patch[key] = copy.deepcopy(value)
    for key in before:
        if key not in after:
            patch[key] = None
    return patch


def plan_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings `actual` to `desired`, or None when it has not drifted.

    Drift is: a field the operator sets differs, a key it set last time and dropped
    is still there, or the `promdemo.dev/last-applied` annotation differs (it depends
    on `desired` only, so once written it matches and a resync patches nothing).
    """
    desired = with_last_applied(normalize_secret(dict(desired)))
    kind = desired["kind"]
    wanted = managed_view(desired)
    annotations = (actual.get("metadata") or {}).get("annotations") or {}
    last = decode_managed_keys(annotations.get(LAST_APPLIED_ANNOTATION))
    for key in _UNTRACKED.get(kind, ()):  # even from an annotation edited by hand
        last.pop(key, None)
    if kind == "Secret" and actual.get("data"):
        # Created once; only keys that are missing are added, none is rewritten.
        have = actual.get("data") or {}
        missing = {k: v for k, v in (wanted.get("data") or {}).items() if k not in have}
        wanted.pop("stringData", None)
        if missing:
            wanted["data"] = missing
        else:
            wanted.pop("data", None)
    current = managed_view(actual)
    merged = merge_desired(current, wanted, last)
    patch = merge_patch_between(current, merged)
    return patch or None
