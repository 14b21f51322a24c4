"""A params.yaml that is wrong as a file rather than in one value: a key given twice, an empty file, a YAML
alias bomb, a huge value, bytes that are not UTF-8. Each through the real ``nar generate`` command (it reads
params.yaml before any work): exit 2, one line naming the key or the file, no traceback, nothing written."""

from __future__ import annotations

import time

import pytest
import yaml

from nar.config import SHOWN_CHARS

from .helpers import TINY, files, nar, one_line_error

GENERATE = ["generate", "--algorithm", "bfs", "--no-progress"]
TINY_TEXT = yaml.safe_dump(TINY, sort_keys=False)


def _refused(root, text: str | bytes, timeout: float = 60) -> str:
    """Write ``text`` as params.yaml, run ``nar generate``: its one error line; nothing else was written."""
    path = root / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = files(root)
    message = one_line_error(nar(GENERATE, root, timeout=timeout), "generate")
    assert files(root) == before
    return message


@pytest.mark.fault(
    category="config",
    fault="params.yaml with a key given twice (a section, a nested key), which PyYAML would silently resolve "
    "to the last one and DVC refuses",
    expected="exit 2, one line naming the duplicated key and both line numbers; nothing written",
    inputs=2,
    lossless=True,
)
def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path):
    nested = TINY_TEXT.replace("generate:\n", "generate:\n  seed: 1\n  seed: 2\n", 1)
    assert nested.count("generate:\n") == 1 and "seed: 1\n  seed: 2" in nested
    message = _refused(tmp_path, nested)
    assert message.startswith("generate.seed: "), message
    assert "lines 2 and 3" in message and "each key once" in message, message

    section_twice = TINY_TEXT + "generate:\n  seed: 5\n"
    last_line = section_twice.count("\n") - 1
    message = _refused(tmp_path, section_twice)
    assert message.startswith("generate: "), message
    assert f"lines 1 and {last_line}" in message, message


@pytest.mark.fault(
    category="config",
    fault="params.yaml empty (0 bytes, or only comments), which used to mean all defaults silently",
    expected="exit 2, one line naming the file and 'an empty file'; `{}` still means all defaults",
    inputs=2,
    lossless=True,
)
def test_empty_params_file_is_an_error(tmp_path):
    for text in ("", "# every stage's settings live here\n\n"):
        message = _refused(tmp_path, text)
        assert message.startswith("params.yaml: got 'an empty file'"), message

    from nar.config import load_params

    (tmp_path / "params.yaml").write_text("{}\n")  # explicit: all defaults
    assert load_params(tmp_path / "params.yaml").generate.seed == 42


BOMB = "".join(
    f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True)
)  # 9 levels of 9 aliases: 9**9 (387 million) strings once expanded


@pytest.mark.fault(
    category="config",
    fault="YAML alias bomb (9 levels of 9 aliases, 387 million values expanded) under an unknown key",
    expected="exit 2 in seconds, a short line naming the key and the value limit; no MemoryError",
    lossless=True,
)
def test_alias_bomb_under_an_unknown_key_is_refused_quickly(tmp_path):
    assert yaml.safe_load("x:\n" + BOMB)["x"]["i"][0][0][0][0][0][0][0][0][0] == "lol"  # it is a real bomb
    start = time.monotonic()
    message = _refused(
        tmp_path, TINY_TEXT.replace("generate:\n", "generate:\n  junk:\n  " + BOMB.replace("\n  ", "\n    "), 1)
    )
    assert time.monotonic() - start < 30
    assert message.startswith("generate.junk."), message
    assert "after YAML aliases are expanded" in message and len(message) < 400, message


@pytest.mark.fault(
    category="config",
    fault="a huge value under an unknown key (a 1 MB string, a 50,000-item list) or a wrong type",
    expected="exit 2, one line naming the key with the value cut to about 200 characters",
    inputs=3,
    lossless=True,
)
def test_huge_bad_values_are_shown_cut_short(tmp_path):
    cases = [
        ("generate.colour", {"colour": "x" * 1_000_000}),
        ("generate.colour", {"colour": list(range(50_000))}),
        ("generate.seed", {"seed": [list(range(1000))] * 20}),
    ]
    for key, section in cases:
        params = {**TINY, "generate": {**TINY["generate"], **section}}
        message = _refused(tmp_path, yaml.safe_dump(params, sort_keys=False))
        assert message.startswith(f"{key}: got "), message[:300]
        shown = message.removeprefix(f"{key}: got ").split("; allowed: ")[0]
        assert len(shown) <= SHOWN_CHARS and "..." in shown, message[:300]


@pytest.mark.fault(
    category="config",
    fault="params.yaml with bytes that are not UTF-8 (Latin-1 text)",
    expected="exit 2, one line naming the file and the offset; no UnicodeDecodeError traceback",
    lossless=True,
)
def test_params_file_that_is_not_utf8_is_refused(tmp_path):
    text = TINY_TEXT.replace("generate:\n", "# r\xe9glages\ngenerate:\n", 1).encode("latin-1")
    message = _refused(tmp_path, text)
    assert message.startswith("params.yaml: ") and "not UTF-8" in message, message
