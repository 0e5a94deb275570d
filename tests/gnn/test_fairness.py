"""Fairness audit and mitigation (gnn.fairness) on synthetic scores with a planted bias."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from gnn.fairness import (
    UNKNOWN,
    Mitigation,
    audit,
    audit_decisions,
    fit_mitigation,
    groups_for,
    load_customer_attributes,
    mitigation_report,
)
from ingest.generator import PROFILES, generate

THRESHOLD = 0.4


@pytest.fixture(scope="module")
def data():
    """40,000 transactions; honest customers of sex B score systematically higher than those of A.

    Fraud scores do not depend on the group, and the age band is unrelated to everything. Group X
    is tiny (about 40 transactions), too small for its rates to count.
    """
    rng = np.random.default_rng(0)
    n = 40_000
    sex = rng.choice(["A", "B", "X"], size=n, p=[0.5, 0.499, 0.001])
    age = rng.choice(["18-24", "25-34", "65+"], size=n, p=[0.3, 0.5, 0.2])
    y = (rng.random(n) < 0.03).astype(int)
    honest = np.where(sex == "B", rng.beta(2, 9, n), rng.beta(2, 16, n))
    scores = np.where(y == 1, rng.beta(6, 3, n), honest)
    half = n // 2
    val = {"y": y[:half], "s": scores[:half], "sex": sex[:half], "age_band": age[:half]}
    test = {"y": y[half:], "s": scores[half:], "sex": sex[half:], "age_band": age[half:]}
    return val, test


def _groups(part):
    return {"sex": part["sex"], "age_band": part["age_band"]}


def test_audit_shows_the_planted_fpr_gap_and_flags_the_tiny_group(data):
    _, test = data
    report = audit(test["y"], test["s"], THRESHOLD, _groups(test))
    sex = report.attributes["sex"]
    assert list(sex.groups) == ["A", "B", "X"]
    gap = sex.gaps["fpr"]
    assert gap is not None
    assert (gap.high_group, gap.low_group) == ("B", "A")
    assert gap.value > 0.03
    assert sex.groups["B"].fpr > 10 * sex.groups["A"].fpr
    # block rates differ by about the same, TPRs hardly (fraud scores do not depend on sex)
    assert sex.gaps["block_rate"].value > 0.03
    assert sex.gaps["tpr"].value < 0.03
    # the tiny group stays in the table, flagged, and is left out of the gaps
    x = sex.groups["X"]
    assert x.n < 50
    assert "fpr" in x.low_support
    assert "tpr" in x.low_support
    assert sex.low_support == ["X"]
    assert gap.excluded == ("X",)
    # no bias by age band
    assert report.attributes["age_band"].gaps["fpr"].value < 0.01
    assert report.attributes["age_band"].low_support == []
    # rates agree with the counts
    b = sex.groups["B"]
    assert b.fpr == b.false_positives / b.negatives
    assert b.block_rate == b.blocked / b.n
    assert b.base_rate == b.positives / b.n
    assert sum(g.n for g in sex.groups.values()) == report.overall.n == len(test["y"])


def test_per_group_rates_agree_with_fairlearn_metricframe(data):
    _, test = data
    y, s, sex = test["y"][:4000], test["s"][:4000], test["sex"][:4000]
    report = audit(y, s, THRESHOLD, {"sex": sex}, min_negatives=1, min_positives=1)
    mf = MetricFrame(
        metrics={
            "fpr": false_positive_rate,
            "tpr": true_positive_rate,
            "block_rate": selection_rate,
        },
        y_true=y,
        y_pred=(s >= THRESHOLD).astype(int),
        sensitive_features=sex,
    )
    for group, row in mf.by_group.iterrows():
        stats = report.attributes["sex"].groups[str(group)]
        assert stats.fpr == pytest.approx(row["fpr"])
        assert stats.block_rate == pytest.approx(row["block_rate"])
        if stats.positives:
            assert stats.tpr == pytest.approx(row["tpr"])
    assert report.overall.fpr == pytest.approx(mf.overall["fpr"])


def test_mitigation_fitted_on_validation_closes_most_of_the_gap_on_test(data):
    val, test = data
    mitigation = fit_mitigation(
        val["y"], val["s"], val["sex"], threshold=THRESHOLD, attribute="sex"
    )
    # B's honest customers score high, so B gets a higher threshold and A a lower one
    assert mitigation.thresholds["B"] > THRESHOLD > mitigation.thresholds["A"]
    assert "X" in mitigation.fallback
    assert mitigation.threshold_for("X") == THRESHOLD

    report = mitigation_report(test["y"], test["s"], _groups(test), mitigation)
    before, after = report.gap_change("sex", "fpr")
    assert before is not None
    assert after is not None
    assert before > 0.03
    assert after < 0.25 * before
    assert after < 0.01
    # each group ends up near the target FPR
    for group in ("A", "B"):
        fpr = report.after.attributes["sex"].groups[group].fpr
        assert abs(fpr - mitigation.target_fpr) < 0.008, (group, fpr)
    # the cost: overall recall within a few points, precision reported
    assert abs(report.cost["recall"]["change"]) < 0.03
    assert report.cost["recall"]["before"] == report.before.overall.tpr
    assert report.cost["precision"]["after"] == report.after.overall.precision
    assert report.cost["blocked"]["change"] == (
        report.after.overall.blocked - report.before.overall.blocked
    )
    # mitigating sex leaves the age-band audit nearly as it was
    _, age_after = report.gap_change("age_band", "fpr")
    assert age_after < 0.01
    # the price of FPR parity here: B's higher threshold lets more of B's fraud through
    tpr_before, tpr_after = report.gap_change("sex", "tpr")
    assert tpr_after > tpr_before
    # the fallback is said in the report
    assert any("sex=X keeps the global threshold" in note for note in report.after.notes)
    assert "global: low support" in report.table()


def test_mitigation_decisions_follow_the_group_thresholds(data):
    val, _ = data
    m = fit_mitigation(val["y"], val["s"], val["sex"], threshold=THRESHOLD, attribute="sex")
    scores = np.array([m.thresholds["A"], m.thresholds["A"], THRESHOLD, THRESHOLD, 0.99])
    groups = ["A", "B", "X", "never_seen", "B"]
    assert m.apply(scores, groups).tolist() == [True, False, True, True, True]
    assert m.apply(np.nextafter(scores, 0), groups).tolist() == [False, False, False, False, True]


def test_groups_without_enough_honest_transactions_keep_the_global_threshold():
    y = [0] * 100 + [0] * 5 + [1] * 3
    s = list(np.linspace(0.0, 1.0, 100)) + [0.9] * 5 + [0.95] * 3
    g = ["big"] * 100 + ["tiny"] * 5 + ["fraud_only"] * 3
    m = fit_mitigation(y, s, g, threshold=0.8, attribute="x", min_negatives=50, min_tail=1)
    assert set(m.thresholds) == {"big"}
    assert m.fallback == {
        "fraud_only": "0 honest transactions < 50",
        "tiny": "5 honest transactions < 50",
    }
    report = mitigation_report(y, s, {"x": g}, m)
    assert report.after.overall.n == 108
    assert report.after.attributes["x"].gaps["fpr"] is None  # only one group has support


def test_a_rare_blocking_rate_needs_a_big_group_for_a_threshold_of_its_own():
    rng = np.random.default_rng(5)
    n = 30_000
    g = np.array(["big"] * (n - 1_000) + ["small"] * 1_000)
    s = rng.random(n)
    y = np.zeros(n, dtype=int)
    t = float(np.quantile(s, 0.999))  # blocks 0.1% of honest transactions
    m = fit_mitigation(y, s, g, threshold=t, attribute="x")
    # 0.1% of 1,000 is one transaction: no threshold can rest on it
    assert set(m.thresholds) == {"big"}
    assert m.fallback["small"].startswith("1000 honest transactions < 10")
    assert m.min_negatives >= 10_000


def test_mitigation_round_trips_through_json():
    m = fit_mitigation(
        [0] * 60 + [1] * 2, list(np.linspace(0, 1, 62)), ["a"] * 62, threshold=0.5, attribute="a"
    )
    data = json.loads(json.dumps(m.to_dict()))
    assert Mitigation.from_dict(data) == m
    assert data["method"] == "group_thresholds"
    assert data["constraint"] == "false_positive_rate_parity"
    assert data["fitted_on"] == {"n": 62, "positives": 2, "negatives": 60}


def test_reports_are_json_ready_and_render_as_tables(data):
    val, test = data
    m = fit_mitigation(val["y"], val["s"], val["sex"], threshold=THRESHOLD, attribute="sex")
    report = mitigation_report(test["y"], test["s"], _groups(test), m)
    text = json.dumps(report.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["before"]["attributes"]["sex"]["low_support"] == ["X"]
    assert back["before"]["attributes"]["sex"]["groups"][2]["tpr"] is None
    assert back["cost"]["recall"]["before"] == pytest.approx(report.before.overall.tpr)
    table = report.before.table()
    assert "### sex" in table
    assert "| X |" in table
    assert "low (FPR, TPR)" in table
    assert "FPR gap" in table


def test_gaps_need_two_groups_with_support():
    report = audit([0] * 60 + [1] * 10, [0.1] * 70, 0.5, {"sex": ["F"] * 70})
    assert report.attributes["sex"].gaps == {"fpr": None, "tpr": None, "block_rate": None}
    assert "fewer than two groups" in report.table()
    empty = audit([0, 1], [0.1, 0.9], 0.5, {})
    assert empty.attributes == {}
    assert empty.overall.tpr == 1.0


def test_mismatched_lengths_raise_naming_the_argument():
    y, s = [0, 1, 0], [0.1, 0.9, 0.2]
    with pytest.raises(ValueError, match="scores has 2 values but y_true has 3"):
        audit(y, s[:2], 0.5, {"sex": ["F", "M", "F"]})
    with pytest.raises(ValueError, match=r"groups\['sex'\] has 2 values"):
        audit(y, s, 0.5, {"sex": ["F", "M"]})
    with pytest.raises(ValueError, match="blocked has 4 values"):
        audit_decisions(y, [True, False, True, False], {})
    with pytest.raises(ValueError, match="groups_for_attribute has 1 values"):
        fit_mitigation(y, s, ["F"], threshold=0.5)
    with pytest.raises(ValueError, match="scores has 2 values"):
        fit_mitigation(y, s[:2], ["F", "M", "F"], threshold=0.5)
    m = Mitigation("sex", 0.5, 0.1, {})
    with pytest.raises(ValueError, match="groups has 1 values but scores has 3"):
        m.apply(s, ["F"])


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="only 0 and 1"):
        audit([0, 2], [0.1, 0.2], 0.5, {})
    with pytest.raises(ValueError, match="empty"):
        audit([], [], 0.5, {})
    with pytest.raises(ValueError, match="finite"):
        audit([0, 1], [0.1, float("nan")], 0.5, {})
    with pytest.raises(ValueError, match="threshold"):
        audit([0, 1], [0.1, 0.2], float("inf"), {})
    with pytest.raises(ValueError, match="method"):
        fit_mitigation([0, 1], [0.1, 0.2], ["a", "a"], threshold=0.5, method="reweigh")
    with pytest.raises(ValueError, match="constraint"):
        fit_mitigation([0, 1], [0.1, 0.2], ["a", "a"], threshold=0.5, constraint="parity")
    with pytest.raises(ValueError, match="no honest"):
        fit_mitigation([1, 1], [0.1, 0.2], ["a", "a"], threshold=0.5)
    m = Mitigation("age_band", 0.5, 0.1, {})
    with pytest.raises(ValueError, match="age_band"):
        mitigation_report([0, 1], [0.1, 0.9], {"sex": ["F", "M"]}, m)


def test_missing_groups_become_unknown():
    report = audit([0, 0, 1], [0.1, 0.9, 0.9], 0.5, {"sex": ["F", None, ""]})
    assert list(report.attributes["sex"].groups) == ["F", UNKNOWN]


def test_attributes_load_from_generated_truth_and_join_to_transactions(tmp_path):
    out = tmp_path / "data"
    generate(out, seed=4, **PROFILES["small"])
    attrs = load_customer_attributes(out / "truth")
    assert load_customer_attributes(out) == attrs  # the data folder works too
    accounts = (out / "truth" / "accounts.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert set(attrs) == {line.split(",")[0] for line in accounts}
    some = sorted(attrs)[:3]
    assert set(attrs[some[0]]) == {"age_band", "sex", "region", "nationality"}
    cols = groups_for([*some, "acc_999999"], attrs)
    assert cols["region"][:3] == [attrs[a]["region"] for a in some]
    assert cols["sex"][-1] == UNKNOWN


def test_loading_without_a_customers_file_says_to_regenerate(tmp_path):
    with pytest.raises(FileNotFoundError, match="generated again"):
        load_customer_attributes(tmp_path)
    (tmp_path / "customers.csv").write_text("account_id,sex\nacc_1,F\n", encoding="utf-8")
    with pytest.raises(ValueError, match="age_band"):
        load_customer_attributes(tmp_path)
