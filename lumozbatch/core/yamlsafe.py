"""Safe YAML for manifests: plain Python values plus the ``line:col`` of every node.

PyYAML's event stream (libyaml when available) is composed here, not by ``yaml.safe_load``,
because a manifest reader needs what ``safe_load`` throws away or does not refuse:

- every node's position, so each diagnostic says ``file:line:col``;
- duplicate keys are an error (``safe_load`` silently keeps the last one);
- only the core tags (``!!str``, ``!!int``...) are allowed; any other tag is refused;
- aliases are expanded under a node budget, so a "billion laughs" file fails fast instead of
  eating memory; an alias to an enclosing node (a cycle) is refused;
- nesting depth is bounded (the C composer recurses; a 4 MiB ``[[[[...`` must not crash);
- a plain scalar that YAML 1.1 read as something other than text (``no`` -> false,
  ``1:1`` -> 61) keeps its source text, so a later "expected a string" can say to quote it.

Mapping keys are always text (their source characters), whatever they look like.
``<<`` merge keys work as in YAML 1.1 (explicit keys win, then merged mappings in order).

Memory: a manifest may list 100,000 seeds. A sequence's plain scalar items are kept as their
values while composing (no node each), and their positions as two ints apiece in one
``array`` that the ``Document`` keeps as it is; only a scalar whose source text cannot be
told from its value (``no``, ``0x1F``, an anchor, a tag) gets a node and a recorded text.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from lumozbatch.errors import Diagnostic, ManifestError

__all__ = ["ALIAS_BUDGET", "MAX_DEPTH", "Document", "PathKey", "parse_yaml", "path_text"]

#: How many nodes alias expansion may add beyond the nodes written in the file.
ALIAS_BUDGET = 100_000
#: Deepest nesting of collections accepted (a manifest needs about six).
MAX_DEPTH = 64

PathKey = tuple[str | int, ...]

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()


def path_text(path: PathKey) -> str:
    """``("jobs", 0, "params", "seed")`` -> ``jobs[0].params.seed``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Document:
    """A parsed YAML document: ``data`` plus where each part of it was written."""

    file: str
    data: Any
    marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    #: per sequence path, where its items were written: line, col of item 0, then item 1...
    items: dict[PathKey, array[int]] = field(default_factory=dict)
    #: plain scalars that YAML resolved to a non-string whose text their value does not give
    plain_non_str: dict[PathKey, str] = field(default_factory=dict)
    #: sequence items tagged explicitly to a non-string (``!!int "5"``): not plain, no hint
    tagged: set[PathKey] = field(default_factory=set)

    def mark(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        """Where ``path`` was written (its key when ``key``), else its nearest known ancestor."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        p = tuple(path)
        while p:
            found = self._written_at(p)
            if found is not None:
                return found
            p = p[:-1]
        return self.marks.get((), (1, 1))

    def _written_at(self, path: PathKey) -> tuple[int, int] | None:
        found = self.marks.get(path)
        if found is None and isinstance(path[-1], int):
            positions = self.items.get(path[:-1])
            if positions is not None and 0 <= 2 * path[-1] < len(positions):
                return positions[2 * path[-1]], positions[2 * path[-1] + 1]
        return found

    def plain_text(self, path: PathKey) -> str | None:
        """The source text of the plain scalar at ``path`` when YAML read it as a non-string
        (``no`` -> false), else None."""
        path = tuple(path)
        text = self.plain_non_str.get(path)
        if text is not None or not path or path[:-1] not in self.items or path in self.tagged:
            return text
        value = _value_at(self.data, path)
        return _default_text(value) if value is None or isinstance(value, (bool, int, float)) else None

    def diag(
        self, path: PathKey, message: str, *, key: bool = False, severity: str = "error"
    ) -> Diagnostic:
        line, col = self.mark(path, key=key)
        return Diagnostic(self.file, line, col, path_text(path), message, severity)

    def quote_hint(self, path: PathKey) -> str:
        """`` (YAML read `no` as false; quote it: "no")`` when that explains a type error."""
        text = self.plain_text(path)
        if text is None:
            return ""
        return f"; YAML read the unquoted {text} as {_describe_plain(text)}: quote it (\"{text}\")"


_MISSING = object()


def _value_at(data: Any, path: PathKey) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _default_text(value: Any) -> str:
    """The text YAML reads back as ``value`` (a non-string scalar) when written plainly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)  # int, float


def _describe_plain(text: str) -> str:
    value = _scalar_value(_resolver.resolve(yaml.ScalarNode, text, (True, False)), text)
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    return f"the number {value!r}"


class _Node:
    __slots__ = ("kind", "tag", "value", "line", "col", "plain", "open", "positions")

    def __init__(self, kind: str, tag: str, value: Any, line: int, col: int, plain: bool) -> None:
        self.kind = kind  # "scalar" | "seq" | "map" | "alias" (tag: its anchor, value: the target)
        self.tag = tag
        # str for scalars; for a seq its items, each a _Node or a scalar's value (see
        # _compact_item); list[(key, value)] for a map
        self.value = value
        self.line = line
        self.col = col
        self.plain = plain
        self.open = kind in ("seq", "map")  # still being composed (an alias to it is a cycle)
        #: a seq's item positions: line, col of each item in turn
        self.positions: array[int] | None = array("i") if kind == "seq" else None


class _Fail(Exception):
    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _check_tag(tag: str | None, mark: Any) -> None:
    if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
        line, col = _pos(mark)
        shown = tag.replace(_CORE, "!!")
        raise _Fail(line, col, f"the tag {shown} is not allowed (manifests use plain YAML only)")


def _compose(events: Iterator[yaml.Event]) -> tuple[_Node | None, int]:
    """Events -> one document's node tree (iteratively, with a depth bound) and its node count."""
    anchors: dict[str, _Node] = {}
    stack: list[tuple[_Node, list[Any]]] = []  # open collections and, for maps, a pending key
    root: _Node | None = None
    count = 0
    documents = 0

    def attach(node: _Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent, pending = stack[-1]
        if parent.kind == "seq":
            parent.value.append(node)
            parent.positions.extend((node.line, node.col))  # type: ignore[union-attr]
        elif pending:
            parent.value.append((pending.pop(), node))
        else:
            pending.append(node)

    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                line, col = _pos(event.start_mark)
                raise _Fail(line, col, "a manifest holds one YAML document; found a second one")
        elif isinstance(event, yaml.AliasEvent):
            target = anchors.get(event.anchor)
            line, col = _pos(event.start_mark)
            if target is None:
                raise _Fail(line, col, f"the alias *{event.anchor} names no anchor defined before it")
            if target.open:
                raise _Fail(line, col, f"the alias *{event.anchor} refers to a node that contains it")
            attach(_Node("alias", event.anchor, target, line, col, False))
        elif isinstance(event, yaml.ScalarEvent):
            _check_tag(event.tag, event.start_mark)
            tag = event.tag
            if tag is None or tag == "!":
                tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
            line, col = _pos(event.start_mark)
            count += 1
            if stack and stack[-1][0].kind == "seq" and not event.anchor:
                item = _compact_item(tag, event.value, not event.style)
                if item is not _MISSING:
                    parent = stack[-1][0]
                    parent.value.append(item)
                    parent.positions.extend((line, col))  # type: ignore[union-attr]
                    continue
            node = _Node("scalar", tag, event.value, line, col, not event.style)
            if event.anchor:
                anchors[event.anchor] = node
            attach(node)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            _check_tag(event.tag, event.start_mark)
            kind = "seq" if isinstance(event, yaml.SequenceStartEvent) else "map"
            line, col = _pos(event.start_mark)
            if len(stack) >= MAX_DEPTH:
                raise _Fail(line, col, f"nested more than {MAX_DEPTH} levels deep")
            node = _Node(kind, _CORE + kind, [], line, col, False)
            count += 1
            if event.anchor:
                anchors[event.anchor] = node
            attach(node)
            stack.append((node, []))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            node, _ = stack.pop()
            node.open = False
    return root, count


def _compact_item(tag: str, text: str, plain: bool) -> Any:
    """A sequence item's value when nothing else about it needs keeping (a string, or a plain
    scalar its value writes back as), else ``_MISSING``: it needs a node."""
    value = _scalar_value(tag, text)
    if isinstance(value, str) or (plain and text == _default_text(value)):
        return value
    return _MISSING


def _scalar_value(tag: str, text: str) -> Any:
    node = yaml.ScalarNode(tag, text)
    if tag == _CORE + "null":
        return None
    if tag == _CORE + "bool":
        return _constructor.construct_yaml_bool(node)
    if tag == _CORE + "int":
        return _constructor.construct_yaml_int(node)
    if tag == _CORE + "float":
        return _constructor.construct_yaml_float(node)
    return text  # str, and timestamps/values kept as the text the user wrote


def _deref(node: _Node) -> _Node:
    while node.kind == "alias":
        node = node.value
    return node


class _Builder:
    def __init__(self, doc: Document, budget: int) -> None:
        self.doc = doc
        self.budget = budget
        self.aliases: list[_Node] = []  # the aliases being expanded, outermost first

    def build(self, node: _Node, path: PathKey, *, placed: bool = False) -> Any:
        """``node``'s value at ``path``; ``placed``: its position is kept already (an item's)."""
        if node.kind == "alias":
            self.aliases.append(node)
            try:
                value = self.build(node.value, path, placed=True)
            finally:
                self.aliases.pop()
            if not placed:
                self.doc.marks[path] = (node.line, node.col)
            return value
        self._spend(node.line, node.col)
        if not placed:
            self.doc.marks[path] = (node.line, node.col)
        if node.kind == "scalar":
            value = _scalar_value(node.tag, node.value)
            if not isinstance(value, str):
                if node.plain:
                    self.doc.plain_non_str[path] = node.value
                elif placed:
                    self.doc.tagged.add(path)
            return value
        if node.kind == "seq":
            return self._sequence(node, path)
        return self._mapping(node, path)

    def _spend(self, line: int, col: int) -> None:
        """One more node built: refuse the file once aliases have added too many."""
        self.budget -= 1
        if self.budget < 0:
            at = self.aliases[0] if self.aliases else None
            name = f"the alias *{at.tag}" if at is not None else "aliases"
            raise _Fail(
                at.line if at is not None else line,
                at.col if at is not None else col,
                f"{name} expands to more than {ALIAS_BUDGET} extra nodes; refusing this file "
                "(write the values out, or use a file: source)",
            )

    def _sequence(self, node: _Node, path: PathKey) -> list[Any]:
        assert node.positions is not None
        self.doc.items[path] = node.positions  # shared, not copied: alias copies point the same
        out: list[Any] = []
        for i, item in enumerate(node.value):
            if isinstance(item, _Node):
                out.append(self.build(item, path + (i,), placed=True))
            else:
                self._spend(node.positions[2 * i], node.positions[2 * i + 1])
                out.append(item)
        return out

    def _mapping(self, node: _Node, path: PathKey) -> dict[str, Any]:
        explicit: list[tuple[_Node, _Node]] = []
        merges: list[_Node] = []
        for key, value in node.value:
            key = _deref(key)
            if key.kind != "scalar":
                raise _Fail(key.line, key.col, "a mapping key must be a plain name, not a collection")
            if key.tag == _CORE + "merge":
                value = _deref(value)
                merges.extend(_deref(v) for v in value.value) if value.kind == "seq" else merges.append(value)
            else:
                explicit.append((key, value))
        seen: dict[str, _Node] = {}
        for key, _ in explicit:
            if key.value in seen:
                first = seen[key.value]
                raise _Fail(
                    key.line,
                    key.col,
                    f"duplicate key {key.value!r} (first at line {first.line}, column {first.col})",
                )
            seen[key.value] = key
        pairs = list(explicit)
        for source in merges:
            if source.kind != "map":
                raise _Fail(source.line, source.col, "a << merge takes a mapping or a list of mappings")
            for key, value in source.value:
                key = _deref(key)
                if key.kind == "scalar" and key.tag != _CORE + "merge" and key.value not in seen:
                    seen[key.value] = key
                    pairs.append((key, value))
        out: dict[str, Any] = {}
        for key, value in pairs:
            child = path + (key.value,)
            self.doc.key_marks[child] = (key.line, key.col)
            out[key.value] = self.build(value, child)
        return out


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document safely; raise ``ManifestError`` with its location on any problem."""
    doc = Document(file=file, data=None)
    try:
        root, count = _compose(yaml.parse(text, Loader=_Loader))
        if root is None:
            raise _Fail(1, 1, "the file holds no YAML document (it is empty)")
        doc.data = _Builder(doc, count + ALIAS_BUDGET).build(root, ())
    except _Fail as exc:
        raise ManifestError([Diagnostic(file, exc.line, exc.col, "", exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark)
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if "maximum nesting depth" in what:
            # PyYAML >= 6.0.3's scanner stops deep flow nesting before our composer sees it
            raise ManifestError([Diagnostic(file, line, col, "", f"nested more than {MAX_DEPTH} levels deep")]) from None
        raise ManifestError([Diagnostic(file, line, col, "", f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as exc:  # reader errors (control characters) carry an offset
        line, col = _offset_pos(text, getattr(exc, "position", 0) or 0)
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ManifestError([Diagnostic(file, line, col, "", f"YAML: {reason}")]) from None
    return doc


def _offset_pos(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
