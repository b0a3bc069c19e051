"""What the README promises a new user (issue 23): the shared sample data and what skips without them."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tests_section() -> str:
    return (ROOT / "README.md").read_text().split("\n## Tests", 1)[1].split("\n## ", 1)[0]


def test_readme_says_which_tests_skip_without_shared_data():
    text = _tests_section()
    assert "../shared/data" in text and "fresh" in text and "skip" in text
    # the files named are the ones the skipping tests look for
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    twix = (ROOT / "tests" / "io" / "test_twix.py").read_text()
    assert "sigpy-brain/cartesian_ksp.npy" in text and '"sigpy-brain", "cartesian_ksp.npy"' in conftest
    assert "twix-example" in text and '"twix-example"' in twix
    assert "-rs" in text  # how to list the skipped tests and their reasons


def test_skip_reasons_name_the_missing_file():
    # the fixtures skip with the path they looked for (not a bare "skipped")
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    twix = (ROOT / "tests" / "io" / "test_twix.py").read_text()
    assert 'pytest.skip(f"shared sample data not found at {path}")' in conftest
    assert 'pytest.skip(f"real twix file not found: {p}' in twix
    assert os.path.basename(__file__) == "test_docs.py"
