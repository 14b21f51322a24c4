import math

import pytest

from nar.transfer.evaluate.stats import aggregate, mean_curves, mean_stderr
from nar.transfer.evaluate.verdict import verdict


def test_mean_and_standard_error_on_hand_made_numbers():
    s = mean_stderr([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7)
    assert s["stderr"] == pytest.approx(0.2 / math.sqrt(3))  # sample std 0.2 (ddof=1) over sqrt(3)
    assert s["n"] == 3
    assert mean_stderr([0.25]) == {"mean": 0.25, "stderr": 0.0, "n": 1}
    assert mean_stderr([None, 1.0, 3.0]) == {"mean": 2.0, "stderr": pytest.approx(1.0), "n": 2}
    assert mean_stderr([None]) == {"mean": None, "stderr": None, "n": 0}


def _results():
    def cell(acc, regret):
        return {"test": {"pointer_acc": acc, "regret": regret}, "ood": {"pointer_acc": acc - 0.1, "regret": regret}}

    return {
        "nar_frozen": {"n50": {"s0": cell(0.8, 0.1), "s1": cell(0.9, None)}, "n500": {"s0": cell(0.95, 0.0)}},
        "e2e": {"n50": {"s0": cell(0.6, 0.3), "s1": cell(0.7, 0.5)}, "n500": {"s0": cell(0.97, 0.0)}},
        "bottleneck": {"n50": {"s0": cell(0.5, 0.2), "s1": cell(0.5, 0.2)}, "n500": {"s0": cell(0.9, 0.0)}},
    }


def test_aggregate_over_seeds():
    agg = aggregate(_results())
    c = agg["test"]["nar_frozen"]["n50"]
    assert c["pointer_acc"]["mean"] == pytest.approx(0.85)
    assert c["pointer_acc"]["stderr"] == pytest.approx(0.05)  # std(0.8, 0.9; ddof=1) = 0.0707 / sqrt(2)
    assert c["regret"] == {"mean": 0.1, "stderr": 0.0, "n": 1}  # the seed with no valid path is left out
    assert agg["ood"]["e2e"]["n50"]["pointer_acc"]["mean"] == pytest.approx(0.55)
    assert agg["test"]["bottleneck"]["n500"]["pointer_acc"]["n"] == 1


def test_verdict_counts_low_data_wins_and_ood_drop():
    v = verdict(aggregate(_results()), "pointer_acc", low_data=200)
    assert v["low_data_comparisons"] == 2 and v["low_data_wins"] == 2 and v["beats_baselines_low_data"]
    assert {c["rival"] for c in v["comparisons"]} == {"e2e", "bottleneck"}
    # 0.85 ± 0.05 against 0.65 ± 0.05 (gap 0.2 > 2 · 0.0707) and 0.5 ± 0 (gap 0.35 > 2 · 0.05)
    assert v["low_data_clear_wins"] == 2 and all(c["beyond_2se"] for c in v["comparisons"])
    assert v["ood_drop"]["nar_frozen"] == pytest.approx(0.1)
    assert v["loses_least_ood"] in v["ood_drop"]
    lower = verdict(aggregate(_results()), "regret", low_data=200)
    assert lower["low_data_wins"] == 2  # 0.1 < 0.4 and 0.1 < 0.2: lower regret wins
    none = verdict(aggregate(_results()), "pointer_acc", low_data=10)
    assert none["low_data_comparisons"] == 0 and not none["beats_baselines_low_data"]


def test_verdict_marks_a_win_within_two_standard_errors_as_noise():
    results = {
        "nar_frozen": {"n50": {"s0": {"test": {"pointer_acc": 0.80}}, "s1": {"test": {"pointer_acc": 0.90}}}},
        "e2e": {"n50": {"s0": {"test": {"pointer_acc": 0.78}}, "s1": {"test": {"pointer_acc": 0.88}}}},
    }
    v = verdict(aggregate(results), "pointer_acc", low_data=200)
    (c,) = v["comparisons"]
    assert c["wins"] and not c["beyond_2se"]  # gap 0.02 < 2 · hypot(0.05, 0.05)
    assert v["low_data_wins"] == 1 and v["low_data_clear_wins"] == 0


def test_the_good_direction_of_a_metric_decides_advantage_best_and_outcome():
    from nar.transfer.evaluate.stats import advantage, best, compare

    assert advantage(0.9, 0.7, "pointer_acc") == pytest.approx(0.2)  # higher accuracy is ahead
    assert advantage(0.1, 0.4, "regret_all") == pytest.approx(0.3)  # lower regret is ahead
    assert advantage(0.4, 0.1, "invalid_rate") == pytest.approx(-0.3)
    assert best([0.2, 0.05, 0.3], "regret") == 0.05 and best([0.2, 0.05, 0.3], "path_match") == 0.3
    # the outcome follows the same direction once the gap is beyond 2 s.e.
    assert compare(0.1, 0.4, 0.01, 0.01, 3, 3, "regret_all")["outcome"] == "better"
    assert compare(0.4, 0.1, 0.01, 0.01, 3, 3, "regret_all")["outcome"] == "worse"
    # raw wins follow it too, however close: lower invalid_rate wins at n=50 within 2 s.e., loses at n=100
    results = {
        "nar_frozen": {
            "n50": {"s0": {"test": {"invalid_rate": 0.10}}, "s1": {"test": {"invalid_rate": 0.20}}},
            "n100": {"s0": {"test": {"invalid_rate": 0.30}}, "s1": {"test": {"invalid_rate": 0.31}}},
        },
        "e2e": {
            "n50": {"s0": {"test": {"invalid_rate": 0.12}}, "s1": {"test": {"invalid_rate": 0.22}}},
            "n100": {"s0": {"test": {"invalid_rate": 0.10}}, "s1": {"test": {"invalid_rate": 0.11}}},
        },
    }
    v = verdict(aggregate(results), "invalid_rate", low_data=200)
    assert [(c["size"], c["wins"], c["outcome"]) for c in v["comparisons"]] == [
        (50, True, "not distinguishable"),
        (100, False, "worse"),
    ]
    assert v["low_data_wins"] == 1 and v["low_data_clear_losses"] == 1 and not v["beats_baselines_low_data"]


def test_mean_curves_average_over_the_seeds_present_at_each_step():
    curves = {
        "e2e": {
            "n50": {
                "s0": [{"step": 5, "val_pointer_acc": 0.2}, {"step": 10, "val_pointer_acc": 0.4}],
                "s1": [{"step": 5, "val_pointer_acc": 0.4}],
            }
        }
    }
    assert mean_curves(curves)["e2e"]["n50"] == [(5, pytest.approx(0.3), 2), (10, pytest.approx(0.4), 1)]


def test_each_comparison_has_its_difference_standard_error_and_outcome():
    from nar.transfer.evaluate.report import _verdict_lines
    from nar.transfer.evaluate.stats import compare

    # the report's digit_grid n=50 case: 77.6 ± 8.5 vs 87.9 ± 0.5 over 3 seeds (a 10-point loss, noisy)
    c = compare(0.776, 0.879, 0.085, 0.005, 3, 3, "pointer_acc")
    assert c["difference"] == pytest.approx(-0.103)
    assert c["difference_stderr"] == pytest.approx(math.hypot(0.085, 0.005))
    assert c["outcome"] == "not distinguishable" and not c["beyond_2se"]
    assert compare(0.841, 0.947, 0.004, 0.003, 3, 3, "pointer_acc")["outcome"] == "worse"
    assert compare(0.947, 0.841, 0.004, 0.003, 3, 3, "pointer_acc")["outcome"] == "better"
    assert compare(0.1, 0.4, 0.01, 0.01, 3, 3, "regret")["outcome"] == "better"  # lower regret is better
    one_seed = compare(0.9, 0.5, 0.0, 0.0, 1, 1, "pointer_acc")
    assert one_seed["outcome"] == "not distinguishable" and one_seed["difference_stderr"] is None

    results = {
        "nar_frozen": {"n50": {f"s{i}": {"test": {"pointer_acc": x}} for i, x in enumerate((0.70, 0.80, 0.90))}},
        "e2e": {"n50": {f"s{i}": {"test": {"pointer_acc": x}} for i, x in enumerate((0.87, 0.88, 0.89))}},
        "bottleneck": {"n50": {f"s{i}": {"test": {"pointer_acc": x}} for i, x in enumerate((0.94, 0.95, 0.96))}},
    }
    v = verdict(aggregate(results), "pointer_acc", low_data=50)
    assert [c["outcome"] for c in v["comparisons"]] == ["not distinguishable", "worse"]
    assert v["low_data_clear_losses"] == 1 and v["low_data_clear_wins"] == 0
    lines = _verdict_lines("digit_grid", v)
    assert "worse in 1, not distinguishable in 1" in lines[0]
    assert lines[1] == (
        "  - n=50, nar_frozen vs e2e: 80.0 ± 5.8 vs 88.0 ± 0.6: difference -8.0 ± 5.8 points: "
        "**not distinguishable** (within 2 s.e.)"
    )
    assert lines[2] == (
        "  - n=50, nar_frozen vs bottleneck: 80.0 ± 5.8 vs 95.0 ± 0.6: difference -15.0 ± 5.8 points: "
        "**worse** (beyond 2 s.e.)"
    )
    assert "✗" not in "\n".join(lines) and "✓" not in "\n".join(lines)


def test_verdict_against_the_heuristic_and_the_turn_targets():
    def seeds(*accs):
        return {f"s{i}": {"test": {"pointer_acc": a}} for i, a in enumerate(accs)}

    results = {
        "nar_frozen": {"n100": seeds(0.90, 0.92, 0.91), "n200": seeds(0.95, 0.96, 0.955)},
        "bottleneck": {"n100": seeds(0.80, 0.81, 0.79), "n200": seeds(0.95, 0.96, 0.955)},
        "bottleneck_turns": {"n100": seeds(0.9, 0.9, 0.9), "n200": seeds(0.99, 0.99, 0.99)},
        "heuristic": {"n100": seeds(0.85, 0.85, 0.85), "n200": seeds(0.85, 0.85, 0.85)},
    }
    v = verdict(aggregate(results), "pointer_acc", low_data=200)
    h = v["against_heuristic"]
    assert h["heuristic"] == {"100": pytest.approx(0.85), "200": pytest.approx(0.85)}
    assert h["better_at"]["nar_frozen"] == [100, 200] and h["better_at"]["bottleneck"] == [200]
    t = v["turns"]
    assert [c["outcome"] for c in t["vs_bottleneck"]] == ["better", "not distinguishable"]
    assert not t["beats_bottleneck_from"]
    assert t["gap_to_bottleneck_turns"]["gap"] == pytest.approx(0.035) and t["within_5_points_of_bottleneck_turns"]
    assert verdict(aggregate(_results()), "pointer_acc", 200)["turns"] is None  # no bottleneck_turns: no turn task
    assert verdict(aggregate(_results()), "pointer_acc", 200)["against_heuristic"] is None


def test_nar_costs_is_measured_like_nar_frozen():
    """Every variant around the frozen processor gets its own low-data comparisons, turn targets and ceiling
    best; the top-level counts stay nar_frozen's."""
    from nar.transfer.evaluate.report import _verdict_lines

    def seeds(*accs):
        return {f"s{i}": {"test": {"pointer_acc": a}, "ood": {"pointer_acc": a - 0.05}} for i, a in enumerate(accs)}

    results = {
        "nar_frozen": {"n100": seeds(0.70, 0.72, 0.71)},
        "nar_costs": {"n100": seeds(0.93, 0.94, 0.935)},
        "e2e": {"n100": seeds(0.80, 0.81, 0.79)},
        "bottleneck": {"n100": seeds(0.90, 0.905, 0.895)},
        "bottleneck_turns": {"n100": seeds(0.95, 0.95, 0.95)},
        "ceiling": {"n100": seeds(0.97, 0.97, 0.97)},
    }
    v = verdict(aggregate(results), "pointer_acc", low_data=200)
    assert v["low_data_clear_losses"] == 2 and v["low_data_clear_wins"] == 0  # nar_frozen's, as before
    costs = v["other_processor_variants"]["nar_costs"]
    assert [(c["rival"], c["outcome"]) for c in costs["comparisons"]] == [("e2e", "better"), ("bottleneck", "better")]
    assert costs["comparisons"][0]["nar_costs"] == pytest.approx(0.935) and costs["low_data_clear_wins"] == 2
    assert costs["turns"]["subject"] == "nar_costs" and costs["turns"]["beats_bottleneck_from"]
    assert costs["turns"]["gap_to_bottleneck_turns"] is None  # no n=200 cell
    assert v["ceiling"]["test"]["best"] == {"nar_frozen": pytest.approx(0.71), "nar_costs": pytest.approx(0.935)}
    assert v["ceiling"]["ood"]["ceiling"] == pytest.approx(0.92)
    text = "\n".join(_verdict_lines("road_turns", v))
    assert "test pointer_acc of nar_costs against e2e and bottleneck at n ≤ 200 (2 comparisons): better in 2" in text
    assert "  - n=100, nar_costs vs bottleneck: 93.5 ± 0.3 vs 90.0 ± 0.3: difference +3.5 ± 0.4 points" in text
    assert "turn targets: nar_costs against bottleneck (one cost per segment) at n ≥ 100: n=100 93.5 vs 90.0" in text
    assert (
        "perfect encoder and decoder), pointer_acc: test 97.0 (best mean over sizes: nar_frozen 71.0, nar_costs 93.5);"
        " ood 92.0 (best mean over sizes: nar_frozen 66.0, nar_costs 88.5)." in text
    )
    # no nar_costs in the sweep: nothing about it
    assert verdict(aggregate(_results()), "pointer_acc", 200)["other_processor_variants"] == {}
