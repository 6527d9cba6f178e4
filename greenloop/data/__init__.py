"""The repair data factory: buggy→fixed pairs a check has proven, in volume.

Sources of pairs, each a command of `greenloop data`:

- `mutate`: mutation operators (`greenloop.data.operators`, registered in
  `mutation_operators`) applied to function-level code units of the standard library, any
  directory, or task families with tests, where a logic mutant is kept only when the
  verifier shows it fails a test the original passes.
- `lint-pairs`: ruff's autofixes (each applied fix a pair, labelled with its rule) and
  bandit's findings (labelled security examples).
- `mine-git`: bug-fix commits of local repositories (and, online, the GitHub API).
- `stackoverflow`: question/answer pairs streamed from a Posts.xml dump.

Then `validate` (syntax, meaningful diff, exact and near-duplicate removal, tests) and
`split` (grouped, stratified train/val/test with curriculum buckets, written as Parquet).

Every pair is one JSON object (`greenloop.data.pairs`); every command writes shards
atomically and resumes after a kill without redoing finished shards
(`greenloop.data.shards`). Nothing here imports torch.
"""

from greenloop.registry import Registry

# name -> MutationOperator subclass, imported when first asked for
mutation_operators: Registry[type] = Registry("mutation_operator", entry_point_group="greenloop.mutation_operators")
_OPERATORS = {
    "syntax": ["missing_colon", "missing_parenthesis", "missing_bracket", "missing_comma",
               "indentation_error", "unclosed_string"],
    "logic": ["off_by_one", "wrong_operator", "wrong_comparison", "negated_condition", "missing_return",
              "wrong_variable", "swapped_arguments", "wrong_literal", "wrong_boolean"],
    "style": ["mutable_default", "shallow_copy", "none_check_missing", "bare_except", "wrong_exception"],
    "security": ["sql_injection", "shell_injection", "unsafe_yaml_load", "async_not_awaited"],
}
for _family, _names in _OPERATORS.items():
    for _name in _names:
        _class = "".join(part.title() for part in _name.split("_"))
        _class = {"IndentationError": "WrongIndentation"}.get(_class, _class)
        mutation_operators.register_lazy(_name, f"greenloop.data.operators.{_family}:{_class}")

__all__ = ["mutation_operators"]
