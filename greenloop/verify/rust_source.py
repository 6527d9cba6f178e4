"""Rust source handling before cargo runs: taking a lib.rs out of a completion, refusing
what must not be compiled, removing the candidate's own test module and appending ours.

Everything here works on a *masked* copy of the source, in which comments and string and
character literals are blanked (same length, newlines kept), so a brace or an `include!`
inside a string never counts. The appended test module is hardened against a candidate
that tries to bend it: it gets an unguessable name (so a hard-coded "test tests::x ... ok"
line matches nothing), its assertion macros are called by full path (so a candidate's
`macro_rules! assert_eq` cannot replace them), and the common prelude types are imported
explicitly (so `use super::*` cannot swap in a candidate's own `String` or `Option`).
"""

from __future__ import annotations

import re
import secrets

from greenloop.verify.extract import FENCE

RAW_STRING = re.compile(r'(?<![\w])b?r(#*)"')
# Reading files at compile time would let a candidate include the reference solution
# or the task data; `#[path]` does the same through a module.
FORBIDDEN = re.compile(r"\b(include|include_str|include_bytes)\s*!|#\s*\[\s*path\s*=")
TEST_ATTR_MOD = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([{;])")
TEST_FN = re.compile(r"#\s*\[\s*test\s*\]\s*(?:#\s*\[[^\]]*\]\s*)*(?:async\s+)?fn\s+(\w+)")
STD_MACROS = re.compile(r"(?<![\w:])(assert|assert_eq|assert_ne|debug_assert|debug_assert_eq|debug_assert_ne"
                        r"|panic|matches|unreachable|vec|format)\s*!")
PINNED_PRELUDE = ("    use ::std::boxed::Box;\n    use ::std::option::Option::{self, None, Some};\n"
                  "    use ::std::result::Result::{self, Err, Ok};\n    use ::std::string::{String, ToString};\n"
                  "    use ::std::vec::Vec;\n")


class SourceError(ValueError):
    """The source cannot be prepared: unbalanced braces, an unterminated literal."""


def _block_comment_end(code: str, start: int) -> int:
    depth, i = 0, start
    while i < len(code):
        if code.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif code.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SourceError("unterminated block comment")


def _quoted_end(code: str, start: int, quote: str) -> int:
    """Index after the literal whose opening quote is at `start`."""
    i = start + 1
    while i < len(code):
        if code[i] == "\\":
            i += 2
        elif code[i] == quote:
            return i + 1
        else:
            i += 1
    raise SourceError("unterminated literal")


def _literal_end(code: str, i: int) -> int | None:
    """If a comment or literal starts at `i`, the index after it; else None."""
    if code.startswith("//", i):
        end = code.find("\n", i)
        return len(code) if end < 0 else end
    if code.startswith("/*", i):
        return _block_comment_end(code, i)
    raw = RAW_STRING.match(code, i)
    if raw:
        end = code.find('"' + raw.group(1), raw.end())
        if end < 0:
            raise SourceError("unterminated raw string")
        return end + 1 + len(raw.group(1))
    if code[i] == '"':
        return _quoted_end(code, i, '"')
    if code[i] == "'":  # a char literal, or a lifetime such as 'a (left alone)
        if code.startswith("\\", i + 1):
            return _quoted_end(code, i, "'")
        if i + 2 < len(code) and code[i + 2] == "'":
            return i + 3
    return None


def mask(code: str) -> str:
    """`code` with comments and literals blanked; positions and newlines unchanged."""
    out, i = [], 0
    while i < len(code):
        end = _literal_end(code, i)
        if end is None:
            out.append(code[i])
            i += 1
        else:
            out.append("".join(c if c == "\n" else " " for c in code[i:end]))
            i = end
    return "".join(out)


def _matching_brace(masked: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == "{":
            depth += 1
        elif masked[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise SourceError("unbalanced braces")


def strip_test_modules(code: str) -> tuple[str, int]:
    """Remove every `#[cfg(test)] mod NAME {...}` (or `mod NAME;`). Returns (code, count)."""
    count = 0
    while True:
        found = TEST_ATTR_MOD.search(mask(code))
        if found is None:
            return code, count
        end = found.end() if found.group(2) == ";" else _matching_brace(mask(code), found.end() - 1) + 1
        code = code[:found.start()] + code[end:]
        count += 1


def forbidden_construct(code: str) -> str | None:
    """The first construct a candidate may not use, or None."""
    found = FORBIDDEN.search(mask(code))
    return found.group(0).rstrip("(= ") if found else None


def declared_tests(test_module: str) -> list[str]:
    """The `#[test]` functions of a test module, in source order."""
    return TEST_FN.findall(mask(test_module))


def harden_test_module(test_module: str) -> tuple[str, str]:
    """Our test module under a fresh random name, with std macros called by full path and
    the prelude types pinned. Returns (source, module name)."""
    masked = mask(test_module)
    head = TEST_ATTR_MOD.search(masked)
    if head is None or head.group(2) != "{":
        raise SourceError("a task's Rust tests must be one `#[cfg(test)] mod NAME { ... }`")
    name = f"greenloop_tests_{secrets.token_hex(6)}"
    body_start = head.end()
    pieces, last = [], body_start
    for call in STD_MACROS.finditer(masked, body_start):
        pieces += [test_module[last:call.start()], "::std::"]
        last = call.start()
    body = "".join(pieces) + test_module[last:]
    source = f"#[cfg(test)]\n#[allow(unused_imports)]\nmod {name} {{\n{PINNED_PRELUDE}{body}"
    return source, name


def assemble(candidate: str, test_module: str) -> tuple[str, str, int]:
    """The lib.rs cargo tests: the candidate without its own test modules, then ours.
    Returns (source, our module's name, how many candidate test modules were removed)."""
    code, removed = strip_test_modules(candidate)
    tests, name = harden_test_module(test_module)
    return f"{code.rstrip()}\n\n{tests.strip()}\n", name, removed


def extract_rust(completion: str, entry_point: str) -> str | None:
    """A lib.rs from a completion: the fenced Rust block that defines the entry point (else
    the first Rust block, else the first block of any kind), or the whole completion."""
    blocks = [(lang.lower(), body) for lang, body in FENCE.findall(completion)]
    if blocks:
        rust = [b for lang, b in blocks if lang in ("rust", "rs")] or [b for lang, b in blocks if lang == ""]
        rust = rust or [b for _, b in blocks]
        defines = re.compile(rf"\bfn\s+{re.escape(entry_point)}\b")
        code = next((b for b in rust if defines.search(b)), rust[0])
    else:
        code = completion
    return code if code.strip() else None
