"""The README's set-up commands, for .ci/run: what a new user copies is what CI runs.

``commands``: print the two fenced ``sh`` blocks of "## Set-up on a fresh machine".
``compare OUT RC``: the bundled example's output (after pip's own lines) must end with
exactly what the README says it prints, and its exit code must be 1 (it has findings).
"""

import re
import sys

README = open("README.md", encoding="utf-8").read()


def commands() -> list[str]:
    section = README.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    found = [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]
    if len(found) != 2 or any("\n" in c for c in found):
        sys.exit(f"ci: expected two one-line set-up commands in the README, found {found!r}")
    return found


def compare(out_path: str, rc: str) -> None:
    expected = re.search(r"<!-- seed-output -->\n```\n(.*?)```", README, re.S).group(1)
    output = open(out_path, encoding="utf-8").read()
    # pip's lines come first; whatever comes right before the example's output must be
    # pip's (a warning from torch there is what a new user would see, and must not).
    before = output[: len(output) - len(expected)].splitlines()
    pip_last = not before or re.match(
        r"(Successfully installed|Requirement already|WARNING: Location|\[notice\])", before[-1]
    )
    if not output.endswith(expected) or not pip_last or rc != "1":
        sys.exit(f"ci: the bundled example (exit {rc}) did not print exactly what the README shows:\n{output[-3000:]}")
    print("ci: the bundled example printed exactly what the README shows")


if __name__ == "__main__":
    if sys.argv[1] == "commands":
        print("\n".join(commands()))
    else:
        compare(sys.argv[2], sys.argv[3])
