"""Security bugs: the code still works, and is now exploitable (injection, unsafe
deserialisation) or silently wrong under concurrency (a coroutine never awaited). Each
turns a safe idiom into the unsafe one people really write."""

from __future__ import annotations

import ast
import re
from typing import Iterator

from greenloop.data.operators.base import Edit, Mutation, MutationOperator, Positions, in_editable, replace
from greenloop.data.units import CodeUnit

_SUBPROCESS_CALLS = {"run", "call", "check_call", "check_output", "Popen"}
_PLACEHOLDER = re.compile(r"\?|%s")


def _quoted(text: str) -> str:
    return repr(text)  # a valid literal whatever the query holds (quotes, newlines)


class SqlInjection(MutationOperator):
    """A parameterised query is turned into string formatting of the parameters.

    fixed:
        cursor.execute("SELECT * FROM users WHERE name = ?", (name,))
    buggy:
        cursor.execute("SELECT * FROM users WHERE name = '%s'" % (name,))
    """

    name, family = "sql_injection", "security"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany") and len(node.args) == 2
                    and not node.keywords and in_editable(unit, node)):
                continue
            query, params = node.args
            if not (isinstance(query, ast.Constant) and isinstance(query.value, str)
                    and isinstance(params, (ast.Tuple, ast.List))):
                continue
            placeholders = _PLACEHOLDER.findall(query.value)
            if not placeholders or len(placeholders) != len(params.elts) or "%" in _PLACEHOLDER.sub("", query.value):
                continue
            formatted = _PLACEHOLDER.sub("'%s'", query.value)
            params_text = pos.text(params)
            if isinstance(params, ast.List):
                params_text = "(" + params_text[1:-1].rstrip().rstrip(",") + ",)"
            start, _ = pos.span(query)
            _, end = pos.span(params)
            yield (Edit(start, end, f"{_quoted(formatted)} % {params_text}"),)


class ShellInjection(MutationOperator):
    """A subprocess call with an argument list becomes a shell command built by string
    formatting.

    fixed:
        subprocess.run(["grep", pattern, path], check=True)
    buggy:
        subprocess.run(f"grep {pattern} {path}", shell=True, check=True)
    """

    name, family = "shell_injection", "security"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List)
                    and in_editable(unit, node) and self._is_subprocess(node.func)
                    and not any(k.arg == "shell" for k in node.keywords)):
                continue
            argv = node.args[0]
            words = []
            for element in argv.elts:
                if isinstance(element, ast.Constant) and isinstance(element.value, str) \
                        and element.value.isprintable() and not set(element.value) & set("{}\"'\\"):
                    words.append(element.value)
                elif isinstance(element, (ast.Name, ast.Attribute, ast.Subscript)) and "\n" not in pos.text(element) \
                        and not set(pos.text(element)) & set("\"'{}"):
                    words.append("{" + pos.text(element) + "}")
                else:
                    break
            else:
                if len(words) >= 2:
                    yield replace(pos, argv, f'f"{" ".join(words)}", shell=True')

    @staticmethod
    def _is_subprocess(func: ast.AST) -> bool:
        if isinstance(func, ast.Attribute):
            return func.attr in _SUBPROCESS_CALLS and isinstance(func.value, ast.Name) and func.value.id == "subprocess"
        return isinstance(func, ast.Name) and func.id in _SUBPROCESS_CALLS - {"run", "call"}


class UnsafeYamlLoad(MutationOperator):
    """YAML is loaded with the full loader, which can build arbitrary Python objects.

    fixed:
        config = yaml.safe_load(text)
    buggy:
        config = yaml.load(text, Loader=yaml.Loader)
    """

    name, family = "unsafe_yaml_load", "security"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and in_editable(unit, node)):
                continue
            module, attr = node.func.value.id, node.func.attr
            if attr in ("safe_load", "safe_load_all") and len(node.args) == 1 and not node.keywords:
                unsafe = "load_all" if attr == "safe_load_all" else "load"
                yield replace(pos, node, f"{module}.{unsafe}({pos.text(node.args[0])}, Loader={module}.Loader)")
            elif attr in ("load", "load_all"):
                for keyword in node.keywords:
                    if keyword.arg == "Loader" and pos.text(keyword.value).endswith(("SafeLoader", "CSafeLoader")):
                        yield replace(pos, keyword.value, f"{module}.Loader")


class AsyncNotAwaited(MutationOperator):
    """A coroutine is called without `await`: it never runs, and the caller gets a
    coroutine object instead of its result.

    fixed:
        async def refresh(client):
            data = await client.fetch()
            return data
    buggy:
        async def refresh(client):
            data = client.fetch()
            return data
    """

    name, family = "async_not_awaited", "security"

    def mutations(self, unit: CodeUnit, pos: Positions) -> Iterator[Mutation]:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Await) and isinstance(node.value, ast.Call) and in_editable(unit, node):
                start, _ = pos.span(node)
                value_start, _ = pos.span(node.value)
                yield (Edit(start, value_start, ""),)
