"""The dashboard's analysis finds exactly the demo's documented drift, and nothing else."""
import pytest

from analysis.slices import reference_error
from analysis.queries import Filters
from analysis.summary import binned_window_summary, window_summary

#: The Overview's summary from raw values (DuckDB) and from binned counts (what it runs
#: on Spark): both must find the ground truth.
SUMMARIES = pytest.mark.parametrize("summarise", [window_summary, binned_window_summary],
                                    ids=["raw", "binned"])


def _drifted_by_month(summary):
    return {ts.month: set(filter(None, (s.strip() for s in lst.split(","))))
            for ts, lst in zip(summary.window_start, summary.drifted_list)}


@SUMMARIES
def test_overall_data_drift_from_month_6_and_none_before(demo_store, ground_truth, summarise):
    summary = summarise(demo_store, ground_truth["dataset"], "month")
    by_month = _drifted_by_month(summary)
    start = ground_truth["data_drift"]["from_month"]
    expected = set(ground_truth["data_drift"]["features"])
    assert sorted(by_month) == list(range(4, 13))
    for month, drifted in by_month.items():
        if month < start:
            assert drifted == set(), f"month {month} should be stable, got {drifted}"
        else:
            assert drifted == expected, f"month {month}: {drifted} != {expected}"
    for month in ground_truth["control_months"]:
        assert by_month[month] == set()


@SUMMARIES
@pytest.mark.parametrize("group", ["students", "families", "professionals", "relocating"])
def test_data_drift_only_in_its_segments(demo_store, ground_truth, group, summarise):
    summary = summarise(demo_store, ground_truth["dataset"], "month",
                             Filters(segments={"user_group": (group,)}))
    by_month = _drifted_by_month(summary)
    dd = ground_truth["data_drift"]
    for month, drifted in by_month.items():
        if group in dd["segments"] and month >= dd["from_month"]:
            assert drifted == set(dd["features"]), (group, month, drifted)
        else:
            assert drifted == set(), (group, month, drifted)


@SUMMARIES
def test_concept_drift_raises_error_of_its_segment_only_from_month_9(demo_store, ground_truth,
                                                                     summarise):
    cd = ground_truth["concept_drift"]
    group = cd["segments"][0]
    f = Filters(segments={"user_group": (group,)})
    ref = reference_error(demo_store, ground_truth["dataset"], f)
    summary = summarise(demo_store, ground_truth["dataset"], "month", f)
    for ts, mape, n_drifted in zip(summary.window_start, summary.mape, summary.drifted_features):
        assert n_drifted == 0  # the concept changed, the inputs did not
        if ts.month >= cd["from_month"]:
            assert mape > 2 * ref["mape"], (ts, mape)
        else:
            assert mape < 1.1 * ref["mape"], (ts, mape)
