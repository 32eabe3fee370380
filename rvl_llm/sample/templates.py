"""The small language the sample corpus's TOML files are written in: templates and steps.

A **template** is a string with slots, like an f-string without the ``f``:
``"Invoice No. {int(10000, 999999)}   Invoice Date: {date}"``.  A slot holds a small expression:

* a **word table**'s name stands for one entry drawn from it (``{companies}``), a **variable**
  for its value (``{brand}``), a **piece** with no arguments for one drawn piece (``{name}``,
  ``{date}``, ``{year}``, ``{phone}``, ``{email_address}``, ``{bates}``);
* calls of the pieces of :func:`make_pieces` (``{int(1, 12)}``, ``{money(0.25, 20.0)}``,
  ``{title_phrase(letter_keywords, int(2, 5))}``: a piece's table arguments take the table whole);
* numbers and strings, ``+ - * / %``, ``a if b else c``, indexing and slices, a record's field
  (``{prop.unit}``) and the string methods ``upper lower title split join startswith``;
* an optional format spec after ``:``, itself a template (``{uniform(0.01, 40):.{int(1, 3)}f}``).

Everything is evaluated left to right, as Python evaluates an f-string, so the random draws
happen in the order they are written.  A template that is one bare slot yields the value itself
(a number stays a number).

A **part** (a class's ``header``, ``block``, ``footer``, or a named helper part) is a list of
**steps**; each step is a line template or a one-key-family table:

* ``{ when = P, then = S, else = S }``: one ``random()``; ``then`` when it is below ``P``;
* ``{ below = [P1, P2, ...], branches = [S1, S2, ..., Sn] }``: one ``random()``; the first branch
  whose threshold it is below, else the last (a threshold may be a template);
* ``{ let = { var = TEMPLATE, ... } }``: bind variables, in the order written;
* ``{ part = NAME }``: run another part, sharing the variables;
* ``{ do = S, repeat = TEMPLATE, index = VAR, join = SEP, into = VAR }``: run ``S`` ``repeat``
  times (``index`` counts from 0); with ``join`` the lines become one, with ``into`` the text is
  bound to a variable instead of written;
* ``{ pick_line = [TEMPLATE, ...], into = VAR }``: render **every** alternative (their draws all
  happen), then pick one.

``S`` (then, else, a branch, do) is a list of steps or the name of a part.  Unknown keys, names
and piece arguments are errors when the files are read.
"""

from __future__ import annotations

import ast
import math
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Rng = random.Random
Env = dict[str, Any]
Lines = list[str]
Expr = Callable[[Rng, Env], Any]
Step = Callable[[Rng, Env, Lines], None]
Table = tuple[Any, ...]


class CorpusSpecError(ValueError):
    """A class description or word table that the generator cannot run."""


def pick(rng: Rng, seq: Sequence[Any]) -> Any:
    """``rng.choice(seq)``, about twice as fast (one call to ``random()``)."""
    return seq[int(rng.random() * len(seq))]


def randint(rng: Rng, low: int, high: int) -> int:
    """``rng.randint(low, high)``, about three times as fast."""
    return low + int(rng.random() * (high - low + 1))


@dataclass(frozen=True)
class Piece:
    func: Callable[..., Any]  # (rng, *args, **kwargs) -> value
    table_args: frozenset[int] = frozenset()  # positions that take a word table whole


def _name(rng: Rng, t: Mapping[str, Table]) -> str:
    last = pick(rng, t["last_names"])
    r = rng.random()
    if r < 0.4:
        return f"{pick(rng, t['first_names'])} {last}"
    if r < 0.7:
        return f"{pick(rng, t['first_names'])[0]}. {pick(rng, t['first_names'])[0]}. {last}"
    if r < 0.85:
        return f"{pick(rng, t['honorifics'])} {last}"
    return f"{pick(rng, t['first_names'])} {pick(rng, t['first_names'])[0]}. {last}"


def _year(rng: Rng) -> int:
    return randint(rng, 1952, 2001)


def _date(rng: Rng, t: Mapping[str, Table]) -> str:
    y, m, d = _year(rng), randint(rng, 1, 12), randint(rng, 1, 28)
    month = t["months"][m - 1]
    r = rng.random()
    if r < 0.45:
        return f"{month} {d}, {y}"
    if r < 0.7:
        return f"{m}/{d}/{y % 100:02d}"
    if r < 0.8:
        return f"{d} {month} {y}"
    if r < 0.9:
        return f"{month[:3].upper()} {d:02d} {y}"
    return f"{y}-{m:02d}-{d:02d}"


def _phone(rng: Rng, t: Mapping[str, Table]) -> str:
    return f"({pick(rng, t['area_codes'])}) {randint(rng, 200, 999)}-{randint(rng, 0, 9999):04d}"


def _email_address(rng: Rng, t: Mapping[str, Table]) -> str:
    first, last = pick(rng, t["first_names"]).lower(), pick(rng, t["last_names"]).lower()
    domain = pick(rng, t["email_domains"])
    return f"{first[0]}{last}@{domain}" if rng.random() < 0.5 else f"{first}.{last}@{domain}"


def bates(rng: Rng, t: Mapping[str, Table]) -> str:
    """A document-control number as stamped on litigation documents."""
    r = rng.random()
    if r < 0.5:
        return str(randint(rng, 1_000_000_000, 2_099_999_999))
    if r < 0.7:
        return f"{randint(rng, 10000, 99999)} {randint(rng, 1000, 9999)}"
    if r < 0.85:
        return f"TI{randint(rng, 10_000_000, 99_999_999)}"
    return f"{pick(rng, t['bates_prefixes'])} {randint(rng, 100_000, 999_999)}"


def _num(rng: Rng, low: float = 1.0, high: float = 100000.0, decimals: int = 0) -> str:
    """A log-uniform number between ``low`` and ``high`` with thousands separators."""
    return f"{low * (high / low) ** rng.random():,.{decimals}f}"


def _title_phrase(rng: Rng, table: Table, n: int) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in rng.choices(table, k=n))


def _words(rng: Rng, table: Table, low: int = 5, high: int = 18) -> str:
    """``low`` to ``high`` words of ``table``, the first capitalised (a sentence, less its stop)."""
    words = rng.choices(table, k=randint(rng, low, high))
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def make_pieces(tables: Mapping[str, Table]) -> dict[str, Piece]:
    """The pieces templates can call; the shared word tables they draw from are ``tables``."""
    return {
        "int": Piece(randint),
        "uniform": Piece(lambda rng, a, b: rng.uniform(a, b)),
        "sample": Piece(lambda rng, table, k: rng.sample(table, k), frozenset({0})),
        "pick": Piece(pick, frozenset({0})),
        "exp": Piece(lambda rng, x: math.exp(x)),
        "log": Piece(lambda rng, x: math.log(x)),
        "len": Piece(lambda rng, x: len(x)),
        "year": Piece(_year),
        "name": Piece(lambda rng: _name(rng, tables)),
        "date": Piece(lambda rng: _date(rng, tables)),
        "phone": Piece(lambda rng: _phone(rng, tables)),
        "email_address": Piece(lambda rng: _email_address(rng, tables)),
        "bates": Piece(lambda rng: bates(rng, tables)),
        "money": Piece(lambda rng, low=1.0, high=50000.0: "$" + _num(rng, low, high, 2)),
        "num": Piece(_num),
        "title_phrase": Piece(_title_phrase, frozenset({0})),
        "words": Piece(_words, frozenset({0})),
        # one random() each: capitals below p; as it is below p, else title-cased
        "maybe_upper": Piece(lambda rng, text, p: text.upper() if rng.random() < p else text),
        "title_unless": Piece(lambda rng, text, p: text if rng.random() < p else text.title()),
        # a table entry with str.format slots, filled with values drawn before
        "format": Piece(lambda rng, template, **values: template.format(**values)),
        "numbered": Piece(
            lambda rng, options: "  ".join(f"{i} {o}" for i, o in enumerate(options, 1))
        ),
    }


_STRING_METHODS = frozenset({"upper", "lower", "title", "split", "join", "startswith"})
_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}


@dataclass(frozen=True)
class Scope:
    """What names mean while compiling one class's templates."""

    tables: Mapping[str, Table]
    pieces: Mapping[str, Piece]
    variables: frozenset[str]
    where: str  # names the class or file in errors


def _variable(name: str, where: str) -> Expr:
    def value(rng: Rng, env: Env) -> Any:
        try:
            return env[name]
        except KeyError:
            raise CorpusSpecError(f"{where}: variable {name!r} used before it is set") from None

    return value


def _compile_name(name: str, scope: Scope) -> Expr:
    if name in scope.variables:
        return _variable(name, scope.where)
    if name in scope.tables:
        table = scope.tables[name]
        return lambda rng, env: table[int(rng.random() * len(table))]
    if name in scope.pieces:
        func = scope.pieces[name].func
        return lambda rng, env: func(rng)
    raise CorpusSpecError(f"{scope.where}: unknown name {name!r} (not a variable, table or piece)")


def _compile_call(node: ast.Call, scope: Scope) -> Expr:
    if isinstance(node.func, ast.Attribute):  # a string method
        method = node.func.attr
        if method not in _STRING_METHODS or node.keywords:
            raise CorpusSpecError(f"{scope.where}: method {method!r} is not allowed")
        obj = compile_expr(node.func.value, scope)
        margs = [compile_expr(a, scope) for a in node.args]
        return lambda rng, env: getattr(obj(rng, env), method)(*(a(rng, env) for a in margs))
    if not isinstance(node.func, ast.Name) or node.func.id not in scope.pieces:
        raise CorpusSpecError(f"{scope.where}: unknown piece in {ast.unparse(node)!r}")
    piece = scope.pieces[node.func.id]
    args: list[Expr] = []
    for position, arg in enumerate(node.args):
        if position in piece.table_args:
            if not isinstance(arg, ast.Name) or arg.id not in scope.tables:
                raise CorpusSpecError(
                    f"{scope.where}: argument {position + 1} of {node.func.id}() must name a "
                    f"word table, got {ast.unparse(arg)!r}"
                )
            table = scope.tables[arg.id]
            args.append(lambda rng, env, table=table: table)
        else:
            args.append(compile_expr(arg, scope))
    keywords = [(k.arg, compile_expr(k.value, scope)) for k in node.keywords]
    if any(k is None for k, _ in keywords):
        raise CorpusSpecError(f"{scope.where}: ** is not allowed in {ast.unparse(node)!r}")
    func = piece.func

    def call(rng: Rng, env: Env) -> Any:
        values = [a(rng, env) for a in args]  # left to right, as Python evaluates a call
        named = {k: v(rng, env) for k, v in keywords}
        return func(rng, *values, **named)

    return call


def compile_expr(node: ast.expr, scope: Scope) -> Expr:
    """A slot's expression as a function of ``(rng, env)``; draws happen left to right."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        constant = node.value
        return lambda rng, env: constant
    if isinstance(node, ast.Name):
        return _compile_name(node.id, scope)
    if isinstance(node, ast.Call):
        return _compile_call(node, scope)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        op = _OPERATORS[type(node.op)]
        left, right = compile_expr(node.left, scope), compile_expr(node.right, scope)
        return lambda rng, env: op(left(rng, env), right(rng, env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand, sign = compile_expr(node.operand, scope), isinstance(node.op, ast.USub)
        return lambda rng, env: -operand(rng, env) if sign else +operand(rng, env)
    if isinstance(node, ast.IfExp):
        test, body, orelse = (compile_expr(n, scope) for n in (node.test, node.body, node.orelse))
        return lambda rng, env: body(rng, env) if test(rng, env) else orelse(rng, env)
    if isinstance(node, ast.Subscript):
        obj, key = compile_expr(node.value, scope), _compile_key(node.slice, scope)
        return lambda rng, env: obj(rng, env)[key(rng, env)]
    if isinstance(node, ast.Attribute) and not node.attr.startswith("_"):  # a record field
        record, field = compile_expr(node.value, scope), node.attr
        return lambda rng, env: record(rng, env)[field]
    raise CorpusSpecError(f"{scope.where}: {ast.unparse(node)!r} is not allowed in a template")


def _compile_key(node: ast.expr, scope: Scope) -> Expr:
    if not isinstance(node, ast.Slice):
        return compile_expr(node, scope)
    if node.step is not None:
        raise CorpusSpecError(f"{scope.where}: slices take no step")
    lower = compile_expr(node.lower, scope) if node.lower else None
    upper = compile_expr(node.upper, scope) if node.upper else None
    return lambda rng, env: slice(
        lower(rng, env) if lower else None, upper(rng, env) if upper else None
    )


def _slot_end(text: str, start: int, stops: str) -> int:
    """The index of the first character of ``stops`` at bracket depth 0 from ``start``."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif depth == 0 and c in stops:
            return i
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
    raise CorpusSpecError(f"unclosed slot in template {text!r}")


def compile_template(text: str, scope: Scope, *, raw: bool = False) -> Expr:
    """A template as a function of ``(rng, env)`` giving its text (``raw``: a lone slot's value)."""
    pieces: list[str | tuple[Expr, Expr | None]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "{}" and text[i + 1 : i + 2] == c:
            literal.append(c)
            i += 2
            continue
        if c == "}":
            raise CorpusSpecError(f"{scope.where}: single '}}' in template {text!r}")
        if c != "{":
            literal.append(c)
            i += 1
            continue
        end = _slot_end(text, i + 1, ":}")
        source = text[i + 1 : end].strip()
        try:
            node = ast.parse(source, mode="eval").body
        except SyntaxError as err:
            raise CorpusSpecError(f"{scope.where}: bad slot {{{source}}} in {text!r}") from err
        spec: Expr | None = None
        if text[end] == ":":
            close = _slot_end(text, end + 1, "}")
            spec = compile_template(text[end + 1 : close], scope)
            end = close
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append((compile_expr(node, scope), spec))
        i = end + 1
    if literal:
        pieces.append("".join(literal))
    if raw and len(pieces) == 1 and isinstance(pieces[0], tuple) and pieces[0][1] is None:
        return pieces[0][0]

    def render(rng: Rng, env: Env) -> str:
        out: list[str] = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                value = piece[0](rng, env)  # the value, then its spec: an f-string's order
                out.append(format(value, piece[1](rng, env) if piece[1] else ""))
        return "".join(out)

    return render


_STEP_KEYS: dict[str, frozenset[str]] = {  # a step's first key -> the keys it may have
    "when": frozenset({"when", "then", "else"}),
    "below": frozenset({"below", "branches"}),
    "let": frozenset({"let"}),
    "part": frozenset({"part"}),
    "do": frozenset({"do", "repeat", "index", "join", "into"}),
    "pick_line": frozenset({"pick_line", "into"}),
}


def bound_names(steps: object) -> set[str]:
    """Every variable a part's steps set (``let``, ``into``, ``index``), found before compiling."""
    names: set[str] = set()
    if isinstance(steps, list):
        for step in steps:
            names |= bound_names(step)
    elif isinstance(steps, dict):
        names |= set(steps.get("let", {})) if isinstance(steps.get("let"), dict) else set()
        names |= {steps[k] for k in ("into", "index") if isinstance(steps.get(k), str)}
        for key in ("then", "else", "do"):
            names |= bound_names(steps.get(key))
        for branch in steps.get("branches", []) if isinstance(steps.get("branches"), list) else []:
            names |= bound_names(branch)
    return names


class PartCompiler:
    """Compiles the parts of one class (its own and the shared ones) into step functions."""

    def __init__(self, parts: Mapping[str, object], scope: Scope) -> None:
        self.sources = parts
        self.scope = scope
        self.compiled: dict[str, list[Step]] = {}

    def part(self, name: str) -> list[Step]:
        if name not in self.compiled:
            if name not in self.sources:
                raise CorpusSpecError(f"{self.scope.where}: no part named {name!r}")
            self.compiled[name] = []  # a part that includes itself runs the empty list, not forever
            self.compiled[name][:] = self.steps(self.sources[name], f"part {name!r}")
        return self.compiled[name]

    def steps(self, source: object, where: str) -> list[Step]:
        """A list of steps, or a part's name (then, else, branches, do)."""
        if isinstance(source, str):
            return self.part(source)
        if not isinstance(source, list):
            raise CorpusSpecError(f"{self.scope.where}: {where}: expected a list of steps")
        return [self.step(item, where) for item in source]

    def template(self, text: object, where: str, *, raw: bool = False) -> Expr:
        if not isinstance(text, str):
            raise CorpusSpecError(f"{self.scope.where}: {where}: expected a template string")
        return compile_template(text, self.scope, raw=raw)

    def step(self, item: object, where: str) -> Step:
        if isinstance(item, str):
            line = self.template(item, where)
            return lambda rng, env, out: out.append(line(rng, env))
        if not isinstance(item, dict) or not item:
            raise CorpusSpecError(f"{self.scope.where}: {where}: a step is a string or a table")
        kind = next((k for k in _STEP_KEYS if k in item), None)
        if kind is None or set(item) - _STEP_KEYS[kind]:
            unknown = sorted(set(item) - _STEP_KEYS.get(kind or "", frozenset()))
            raise CorpusSpecError(f"{self.scope.where}: {where}: unknown step keys {unknown}")
        return getattr(self, f"_{kind}")(item, where)

    def _when(self, item: dict[str, Any], where: str) -> Step:
        p = float(item["when"])
        then = self.steps(item.get("then", []), where)
        orelse = self.steps(item.get("else", []), where)

        def when(rng: Rng, env: Env, out: Lines) -> None:
            run_steps(then if rng.random() < p else orelse, rng, env, out)

        return when

    def _below(self, item: dict[str, Any], where: str) -> Step:
        thresholds = [
            self.template(t, where, raw=True) if isinstance(t, str) else _constant(float(t))
            for t in item["below"]
        ]
        branches = [self.steps(b, where) for b in item.get("branches", [])]
        if len(branches) != len(thresholds) + 1:
            raise CorpusSpecError(
                f"{self.scope.where}: {where}: {len(thresholds)} thresholds need "
                f"{len(thresholds) + 1} branches, got {len(branches)}"
            )

        def below(rng: Rng, env: Env, out: Lines) -> None:
            r = rng.random()
            for threshold, branch in zip(thresholds, branches, strict=False):
                if r < threshold(rng, env):
                    run_steps(branch, rng, env, out)
                    return
            run_steps(branches[-1], rng, env, out)

        return below

    def _let(self, item: dict[str, Any], where: str) -> Step:
        if not isinstance(item["let"], dict):
            raise CorpusSpecError(f"{self.scope.where}: {where}: let takes a table")
        bindings = [(k, self.template(v, where, raw=True)) for k, v in item["let"].items()]

        def let(rng: Rng, env: Env, out: Lines) -> None:
            for name, value in bindings:
                env[name] = value(rng, env)

        return let

    def _part(self, item: dict[str, Any], where: str) -> Step:
        steps = self.part(item["part"])
        return lambda rng, env, out: run_steps(steps, rng, env, out)

    def _do(self, item: dict[str, Any], where: str) -> Step:
        body = self.steps(item["do"], where)
        repeat = self.template(item["repeat"], where, raw=True) if "repeat" in item else None
        index: str | None = item.get("index")
        join: str | None = item.get("join")
        into: str | None = item.get("into")
        gather = join is not None or into is not None

        def do(rng: Rng, env: Env, out: Lines) -> None:
            lines: Lines = [] if gather else out
            for i in range(repeat(rng, env) if repeat else 1):
                if index:
                    env[index] = i
                run_steps(body, rng, env, lines)
            if gather:
                text = ("\n" if join is None else join).join(lines)
                if into:
                    env[into] = text
                else:
                    out.append(text)

        return do

    def _pick_line(self, item: dict[str, Any], where: str) -> Step:
        options = [self.template(t, where) for t in item["pick_line"]]
        into: str | None = item.get("into")

        def pick_line(rng: Rng, env: Env, out: Lines) -> None:
            rendered = [option(rng, env) for option in options]  # every option draws first
            line = pick(rng, rendered)
            if into:
                env[into] = line
            else:
                out.append(line)

        return pick_line


def _constant(value: float) -> Expr:
    return lambda rng, env: value


def run_steps(steps: list[Step], rng: Rng, env: Env, out: Lines) -> None:
    for step in steps:
        step(rng, env, out)
