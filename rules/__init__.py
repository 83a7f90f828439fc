"""convlint's built-in rules, installed as ``convlint.rules``.

Each module here holds ``Rule`` records; the package is registered under the
``convlint.rules`` entry point, so a new rule file needs no other change.
"""
