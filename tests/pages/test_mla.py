"""The MLA page: the KV table checks out, the live layer agrees, bad ranks and empty choices are handled."""

from __future__ import annotations

from tests.pages.apptest import assert_clean, errors, open_page


def test_page_tables_and_checks():
    at = open_page("mla.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["Match"]) == {"✓"}
    v3 = table[table["Model"].str.startswith("DeepSeek-V3")].iloc[0]
    assert v3["Values / token / layer"] == 576 and v3["Per token (formula)"] == "68.62 KiB"
    small = at.dataframe[1].value
    assert set(small["Match"]) == {"✓"} and len(small) == 4
    absorbed = next(m.value for m in at.metric if m.label == "Absorbed vs plain (fp64)")
    assert float(absorbed) < 1e-12


def test_bad_inputs_and_timing():
    at = open_page("mla.py")
    at.number_input(key="mla_kvrank").set_value(512).run()        # hidden is 256
    assert_clean(at)
    assert any("exceeds the hidden size" in e for e in errors(at))
    at.multiselect(key="mla_models").set_value([]).run()
    assert_clean(at)
    assert any("Pick at least one model" in i.value for i in at.info)
    at.select_slider(key="mla_ctx").set_value(256).run()
    at.button(key="mla_time_btn").click().run()
    assert_clean(at)
    timing = at.dataframe[-1].value
    assert list(timing["Form"]) == ["plain", "decompressed", "absorbed"]
    assert (timing["Median (ms)"] > 0).all()
