"""The demo's report states what was measured: its sentences follow the numbers."""

from __future__ import annotations

from latentgeo.pipeline._demo_report import (
    equivariance_findings,
    flip_findings,
    spectrum_findings,
)


def _models(r2_a: float, r2_b: float) -> dict:
    def layers(r2: float, onset: int | None) -> dict:
        return {
            "conv": {"r2": 0.99, "null_r2": 0.1, "onset_step": 0, "spectrum": {"A": 0.2}},
            "fc": {
                "r2": r2,
                "null_r2": 0.3,
                "onset_step": onset,
                "spectrum": {"A": 0.7, "E1": 0.3} if r2 > 0.5 else {"A": 0.1, "E1": 0.9},
                "subgroups": {"invariant": ["C2<s>"] if r2 > 0.5 else [], "equivariant": []},
            },
        }

    return {
        "a": {"title": "model A", "layers": layers(r2_a, 5 if r2_a >= 0.9 else None)},
        "b": {"title": "model B", "layers": layers(r2_b, 5 if r2_b >= 0.9 else None)},
    }


def test_the_ranking_follows_the_numbers():
    one = equivariance_findings(_models(0.95, 0.2), threshold=0.9)
    other = equivariance_findings(_models(0.2, 0.95), threshold=0.9)
    assert "highest for model A" in one and "lowest for model B" in one
    assert "highest for model B" in other and "lowest for model A" in other
    assert "model A 2 of 2, model B 1 of 2" in one
    # A final R² under its null level is reported, named by model and layer.
    assert "not above the null level: model B fc" in one
    assert "not above the null level: model A fc" in other


def test_nothing_is_claimed_that_was_not_measured():
    models = _models(0.95, 0.95)
    text = equivariance_findings(models, threshold=0.9)
    assert "not above the null level: none" in text
    for m in models.values():
        m["layers"]["fc"]["r2"] = None
    text = equivariance_findings(models, threshold=0.9)
    # An undefined R² is shown as such and neither counted nor ranked as a value.
    assert "model A 0.99 → n/a" in text and "model A 1 of 2, model B 1 of 2" in text


def test_spectrum_and_subgroup_sentences_follow_the_numbers():
    assert "model A (fc) A 0.70" in spectrum_findings(_models(0.95, 0.2))
    assert "model B (fc) E1 0.90" in spectrum_findings(_models(0.95, 0.2))
    assert flip_findings(_models(0.95, 0.2)["a"]).endswith(
        "fc, is invariant to C2<s> and equivariant to no subgroup."
    )
    assert "invariant to no subgroup" in flip_findings(_models(0.95, 0.2)["b"])
    assert flip_findings({"title": "x", "layers": {"fc": {"r2": 1.0}}}) == ""
