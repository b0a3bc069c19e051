"""Protocols: built-ins load, overrides apply, bad keys and types fail clearly."""

import pytest

from mridip.errors import ProtocolError
from mridip.protocols import builtin_protocols, dumps, load_protocol


def test_every_builtin_protocol_validates():
    names = builtin_protocols()
    assert {"tddip-radial-cine", "tddip-cartesian-cine", "dip-static", "temporal-tv"} <= set(names)
    for name in names:
        p = load_protocol(name)
        assert p.method and p.text.startswith("method = ")
        if p.is_generator:
            p.fit_config()  # FitConfig accepts the [fit] table


def test_overrides_are_applied_typed_and_recorded():
    p = load_protocol("tddip-radial-cine", ["fit.iterations=17", "model.manifold=circle", "fit.lr=2e-4"])
    assert p.fit["iterations"] == 17 and isinstance(p.fit["iterations"], int)
    assert p.model["manifold"] == "circle"
    assert p.fit_config().lr == pytest.approx(2e-4)
    assert "iterations = 17" in p.text and 'manifold = "circle"' in p.text
    # the recorded text reloads to the same protocol
    again = load_protocol(__import__("tomllib").loads(p.text))
    assert again.fit == p.fit and again.model == p.model


@pytest.mark.parametrize(
    "override, message",
    [
        ("fit.iterationz=3", "unknown key 'fit.iterationz'.*allowed keys in \\[fit\\]: .*iterations"),
        ("fit.iterations=\"many\"", "'fit.iterations' must be of type int"),
        ("model.manifold=3", "'model.manifold' must be of type str"),
        ("model.not_an_option=1", "unknown key 'model.not_an_option'"),
        ("fitt.iterations=3", "unknown table 'fitt'"),
        ("fit.holdout=0.7", "holdout must be in"),
        ("iterations", "TABLE.KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ProtocolError, match=message):
        load_protocol("tddip-radial-cine", [override])


def test_unknown_protocol_and_method_and_missing_lambda(tmp_path):
    with pytest.raises(ProtocolError, match="built-in protocols: .*tddip-radial-cine"):
        load_protocol("no-such-protocol")
    with pytest.raises(ProtocolError, match="unknown method 'magic'"):
        load_protocol({"method": "magic"})
    with pytest.raises(ProtocolError, match="needs baseline.lam"):
        load_protocol({"method": "temporal-tv"})
    bad = tmp_path / "bad.toml"
    bad.write_text("method = \"tddip\"\n[fit\n")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        load_protocol(bad)


def test_dumps_round_trip():
    import tomllib

    doc = {"method": "tddip", "fit": {"iterations": 5, "betas": [0.5, 0.98], "amp": False}, "model": {"manifold": "line"}}
    assert tomllib.loads(dumps(doc)) == doc


def test_a_bad_override_names_the_protocols_value():
    # tddip-radial-cine sets fit.iterations = 20000; FitConfig's default is 3000
    with pytest.raises(ProtocolError, match=r"the protocol sets 20000; the default is 3000\), got 'abc'"):
        load_protocol("tddip-radial-cine", ["fit.iterations=abc"])
    # a key the protocol does not set: its default, as before
    with pytest.raises(ProtocolError, match=r"like its default 10\), got 'abc'"):
        load_protocol("tddip-radial-cine", ["fit.log_every=abc"])


def test_the_readme_lists_every_builtin_protocol():
    from pathlib import Path

    from mridip.protocols import builtin_protocols

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("PROTOCOL is a TOML file", 1)[1].split("\n## ", 1)[0]
    missing = [p for p in builtin_protocols() if f"`{p}`" not in section]
    assert not missing, f"README's protocol list omits {missing}"
