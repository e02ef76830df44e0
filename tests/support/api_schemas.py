"""What kube-apiserver checks in an object before it stores it, in Python, for the unit tier.

The samples' test (tests/unit/project/test_samples.py) and the CRD's tests check
objects with it without a control plane; the tier of record is the real API server
(tests/cluster).

- Custom resources (the CRDs of crds/, read when `crd_kinds` is called): the
  structural defaults of the CRD's openAPIV3Schema are applied as kube-apiserver
  applies them, then the object is validated against that schema, including
  `x-kubernetes-list-type: map|set` (unique keys / items), and, when the schema
  admits it, against the CRD's `x-kubernetes-validations` CEL rules
  (tests/support/cel.py).
- Core kinds (Deployment, Service, Secret, Pod, Event, Namespace, ...): the strict
  JSON schemas bundled with `kubernetes-validate`, for KUBERNETES_VERSION.
- Every object's metadata: ObjectMeta's schema, plus the checks kube-apiserver
  makes of names, labels, annotations and owner references.

A field the schema does not declare is refused with 400 BadRequest, as
kube-apiserver does with `fieldValidation=Strict` (kubectl's default).
A value the schema forbids is 422 Invalid, with one cause per field.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
import yaml

from tests.support.cel import cel_errors

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"

#: The Kubernetes version whose core schemas apply: the kindest/node of hack/kind.yaml.
KUBERNETES_VERSION = "1.36"

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"

# kube-apiserver's name rules (k8s.io/apimachinery/pkg/util/validation).
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ANNOTATIONS_MAX_BYTES = 256 * 1024
#: Resources whose names are DNS-1035 labels (Services) or DNS-1123 labels; the rest
#: are DNS-1123 subdomains.
_NAME_RULE = {"services": "dns1035", "namespaces": "dns1123label"}


@dataclass(frozen=True)
class Cause:
    """One reason an object is refused, as in a Status's `details.causes`."""

    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    field: str  # spec.template.spec.containers[0].image
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "field": self.field, "message": self.message}


class Rejected(Exception):
    """An object the API server refuses: 400 (unknown fields) or 422 (invalid values)."""

    def __init__(self, code: int, reason: str, message: str, causes: list[Cause]) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.causes = causes


@dataclass
class Kind:
    """What the server knows of one resource: its kind, its scope and how to check it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    shortnames: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    #: The CRD's openAPIV3Schema (defaults and list types are read from it).
    openapi: Mapping[str, Any] | None = None
    #: A JSON schema validator for the whole object, or None (nothing checked).
    validator: jsonschema.protocols.Validator | None = field(default=None, repr=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# --------------------------------------------------------------------------- schemas


def _schema_dir() -> importlib.resources.abc.Traversable:
    """kubernetes-validate's strict schemas for the newest version ≤ KUBERNETES_VERSION."""
    base = importlib.resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")

    def minor(name: str) -> tuple[int, int]:
        major, minor_, *_ = name.removeprefix("v").split("-")[0].split(".")
        return int(major), int(minor_)

    wanted = tuple(int(p) for p in KUBERNETES_VERSION.split("."))
    dirs = [
        d.name
        for d in base.iterdir()
        if d.name.endswith("-local-strict") and minor(d.name) <= wanted
    ]
    if not dirs:
        raise RuntimeError(
            f"kubernetes-validate has no schemas for Kubernetes {KUBERNETES_VERSION}"
        )
    return base.joinpath(max(dirs, key=minor))


@functools.cache
def _registry() -> referencing.Registry:
    definitions = json.loads(_schema_dir().joinpath("_definitions.json").read_text())
    resource = referencing.Resource.from_contents(definitions)
    return referencing.Registry().with_resource(_DEFINITIONS_ID, resource)


def _validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema, registry=_registry())


@functools.cache
def core_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The strict validator of a core kind (`apps/v1`, `Deployment`), None if unknown."""
    # kubernetes-validate's file names: rbac.authorization.k8s.io/v1 → rbac-v1
    mangled = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir().joinpath(f"{kind.lower()}-{mangled}.json")
    if not path.is_file():
        return None
    return _validator(json.loads(path.read_text()))


@functools.cache
def _object_meta_validator() -> jsonschema.protocols.Validator:
    return _validator({"$ref": f"{_DEFINITIONS_ID}#/$defs/{_OBJECT_META}"})


def openapi_to_jsonschema(schema: Mapping[str, Any], *, root: bool = False) -> dict[str, Any]:
    """A CRD's structural openAPIV3Schema as a closed JSON schema.

    An object with `properties` (or none at all) accepts no other field unless it says
    `x-kubernetes-preserve-unknown-fields`; `nullable` becomes a null type;
    `x-kubernetes-int-or-string` becomes integer-or-string. At the root, apiVersion,
    kind and metadata are always allowed (metadata is checked on its own).
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: openapi_to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = openapi_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(v) for v in value]
        elif key.startswith("x-kubernetes-") or key in ("nullable", "default", "description"):
            continue
        else:
            out[key] = copy.deepcopy(value)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if root:
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"type": "object"}
    is_object = schema.get("type") == "object" or "properties" in schema
    if (
        is_object
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def apply_defaults(obj: Any, schema: Mapping[str, Any] | None) -> None:
    """Structural defaulting, as kube-apiserver does it (in place).

    A property that is absent (or null without `nullable`) gets a copy of its
    `default`; then every property present is defaulted by its own schema, and
    list items by `items` (k8s.io/apiextensions-apiserver .../structural/defaulting).
    """
    if not schema:
        return
    if isinstance(obj, dict):
        for key, prop in (schema.get("properties") or {}).items():
            if "default" not in prop:
                continue
            if key not in obj or (obj[key] is None and not prop.get("nullable")):
                obj[key] = copy.deepcopy(prop["default"])
        additional = schema.get("additionalProperties")
        for key, value in obj.items():
            prop = (schema.get("properties") or {}).get(key)
            if prop is not None:
                apply_defaults(value, prop)
            elif isinstance(additional, Mapping):
                apply_defaults(value, additional)
    elif isinstance(obj, list):
        for item in obj:
            apply_defaults(item, schema.get("items"))


def _field(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def list_type_causes(obj: Any, schema: Mapping[str, Any] | None, path: tuple = ()) -> list[Cause]:
    """Duplicates in lists whose schema says `x-kubernetes-list-type: map` or `set`."""
    if not schema or obj is None:
        return []
    causes: list[Cause] = []
    if isinstance(obj, list):
        list_type = schema.get("x-kubernetes-list-type")
        seen: set[str] = set()
        for i, item in enumerate(obj):
            if list_type == "map" and isinstance(item, Mapping):
                keys = schema.get("x-kubernetes-list-map-keys") or []
                ident = json.dumps([item.get(k) for k in keys])
                if ident in seen:
                    value = {k: item.get(k) for k in keys}
                    causes.append(Cause("FieldValueDuplicate", _field((*path, i)),
                                        f"Duplicate value: {json.dumps(value)}"))  # fmt: skip
                seen.add(ident)
            elif list_type == "set":
                ident = json.dumps(item, sort_keys=True)
                if ident in seen:
                    causes.append(Cause("FieldValueDuplicate", _field((*path, i)),
                                        f"Duplicate value: {ident}"))  # fmt: skip
                seen.add(ident)
            causes += list_type_causes(item, schema.get("items"), (*path, i))
    elif isinstance(obj, Mapping):
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, value in obj.items():
            sub = props.get(key, additional if isinstance(additional, Mapping) else None)
            causes += list_type_causes(value, sub, (*path, key))
    return causes


# --------------------------------------------------------------------------- errors


def _unknown_fields(error: jsonschema.ValidationError, prefix: tuple = ()) -> list[str]:
    declared = set((error.schema or {}).get("properties") or {})
    patterns = [re.compile(p) for p in (error.schema or {}).get("patternProperties") or {}]
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    return [
        _field((*prefix, *error.absolute_path, key))
        for key in instance
        if key not in declared and not any(p.search(key) for p in patterns)
    ]


def _cause(error: jsonschema.ValidationError, prefix: tuple = ()) -> list[Cause]:
    path = (*prefix, *error.absolute_path)
    where = _field(path) or "<root>"
    value = json.dumps(error.instance)[:200]
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in (error.instance or {})]
        return [Cause("FieldValueRequired", _field((*path, p)), "Required value") for p in missing]
    if error.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return [Cause("FieldValueNotSupported", where,
                      f"Unsupported value: {value}: supported values: {allowed}")]  # fmt: skip
    if error.validator == "type":
        return [Cause("FieldValueTypeInvalid", where,
                      f"Invalid value: {value}: {where} in body must be of type "
                      f"{error.validator_value}")]  # fmt: skip
    return [Cause("FieldValueInvalid", where, f"Invalid value: {value}: {error.message}")]


def _add(
    errors: Iterator[jsonschema.ValidationError],
    unknown: list[str],
    causes: list[Cause],
    prefix: tuple = (),
) -> None:
    """Sort schema errors into unknown fields (400) and invalid values (422)."""
    for error in errors:
        if error.validator == "additionalProperties" and error.validator_value is False:
            unknown += _unknown_fields(error, prefix)
        else:
            causes += _cause(error, prefix)


# --------------------------------------------------------------------------- metadata


def _qualified_name_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase DNS-1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (at most 63 characters)"
        )
    return None


def _name_problem(name: str, plural: str) -> str | None:
    rule = _NAME_RULE.get(plural, "dns1123subdomain")
    if rule == "dns1035" and (len(name) > 63 or not _DNS1035_LABEL.match(name)):
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character"
        )
    if rule == "dns1123label" and (len(name) > 63 or not _DNS1123_LABEL.match(name)):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"
        )
    if rule == "dns1123subdomain" and (len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name)):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def metadata_causes(meta: Mapping[str, Any], plural: str) -> list[Cause]:
    """kube-apiserver's ObjectMeta checks: name, labels, annotations, owner references."""
    causes: list[Cause] = []

    def invalid(where: str, message: str, reason: str = "FieldValueInvalid") -> None:
        causes.append(Cause(reason, where, message))

    name = meta.get("name")
    if not name:
        invalid("metadata.name", "Required value: name or generateName is required",
                "FieldValueRequired")  # fmt: skip
    elif problem := _name_problem(name, plural):
        invalid("metadata.name", f"Invalid value: {name!r}: {problem}")
    for key, value in (meta.get("labels") or {}).items():
        if problem := _qualified_name_problem(key):
            invalid("metadata.labels", f"Invalid value: {key!r}: {problem}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            invalid(
                "metadata.labels",
                f"Invalid value: {value!r}: a valid label must be an empty string or consist "
                "of alphanumeric characters, '-', '_' or '.' (at most 63 characters)",
            )
    annotations = meta.get("annotations") or {}
    for key in annotations:
        if problem := _qualified_name_problem(key.lower()):
            invalid("metadata.annotations", f"Invalid value: {key!r}: {problem}")
    if sum(len(k) + len(str(v or "")) for k, v in annotations.items()) > _ANNOTATIONS_MAX_BYTES:
        too_long = f"Too long: must have at most {_ANNOTATIONS_MAX_BYTES} bytes"
        invalid("metadata.annotations", too_long, "FieldValueTooLong")
    refs = meta.get("ownerReferences") or []
    for i, ref in enumerate(refs):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not (ref or {}).get(key):
                invalid(f"metadata.ownerReferences[{i}].{key}", "Required value",
                        "FieldValueRequired")  # fmt: skip
    if sum(1 for ref in refs if (ref or {}).get("controller")) > 1:
        invalid("metadata.ownerReferences", "Only one reference can have Controller set to true")
    return causes


# --------------------------------------------------------------------------- the registry


def _crd_kinds(crd: Mapping[str, Any]) -> list[Kind]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kinds = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        openapi = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
        kinds.append(
            Kind(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                shortnames=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple((version.get("subresources") or {}).keys()),
                openapi=openapi,
                validator=_validator(openapi_to_jsonschema(openapi, root=True))
                if openapi
                else None,
            )
        )
    return kinds


def crd_kinds(crd_dir: Path = CRD_DIR) -> list[Kind]:
    """The resources of every CRD in `crd_dir` (read now: the file may change between runs)."""
    kinds = []
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                kinds += _crd_kinds(doc)
    return kinds


def check(
    kind: Kind | None, api_version: str, kind_name: str, plural: str, obj: Mapping[str, Any]
) -> dict[str, Any]:
    """`obj` defaulted as the API server stores it; Rejected when the server would refuse it.

    `kind` is what the server knows of a custom resource (its CRD's schema); None for a
    built-in resource, checked against its core schema when kubernetes-validate has one
    (metadata included).
    """
    admitted = copy.deepcopy(dict(obj))
    unknown: list[str] = []
    causes: list[Cause] = []
    if kind is not None:
        if kind.openapi is not None:
            apply_defaults(admitted, kind.openapi)
        if kind.validator is not None:
            _add(kind.validator.iter_errors(admitted), unknown, causes)
        meta_errors = _object_meta_validator().iter_errors(admitted.get("metadata") or {})
        _add(meta_errors, unknown, causes, ("metadata",))
        causes += list_type_causes(admitted, kind.openapi)
        if not causes and not unknown and kind.openapi is not None:
            # The API server runs the CRD's CEL rules on an object the schema admitted.
            causes += [
                Cause("FieldValueInvalid", _field(path) or "<root>", message)
                for path, message in cel_errors(kind.openapi, admitted)
            ]
    else:
        validator = core_validator(api_version, kind_name)
        if validator is not None:
            _add(validator.iter_errors(admitted), unknown, causes)
    causes += metadata_causes(admitted.get("metadata") or {}, plural)

    name = (admitted.get("metadata") or {}).get("name") or ""
    group, _, version = api_version.rpartition("/")
    if unknown:
        fields = ", ".join(f'unknown field "{f}"' for f in unknown)
        raise Rejected(
            400,
            "BadRequest",
            f'{kind_name} in version "{version}" cannot be handled as a {kind_name}: '
            f"strict decoding error: {fields}",
            [Cause("FieldValueUnknown", f, f'unknown field "{f}"') for f in unknown],
        )
    if causes:
        detail = ", ".join(f"{c.field}: {c.message}" for c in causes)
        qualified = f"{kind_name}.{group}" if group else kind_name
        raise Rejected(
            422,
            "Invalid",
            f'{qualified} "{name}" is invalid: ' + (f"[{detail}]" if len(causes) > 1 else detail),
            causes,
        )
    return admitted
