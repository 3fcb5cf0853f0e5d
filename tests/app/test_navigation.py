"""The navigation registry covers every page script, and every entry is well formed."""

from __future__ import annotations

from pathlib import Path

from app.navigation import HOME, PAGES, SECTIONS, all_pages, section_pages

PAGES_DIR = Path(__file__).resolve().parents[2] / "pages"


def test_every_page_script_is_registered():
    scripts = {p.name for p in PAGES_DIR.glob("*.py") if not p.name.startswith("_")}
    registered = {spec.path for spec in all_pages()}
    assert scripts == registered, (
        f"unregistered: {sorted(scripts - registered)}, missing files: {sorted(registered - scripts)}"
    )


def test_entries_are_well_formed():
    paths = [spec.path for spec in all_pages()]
    assert len(paths) == len(set(paths))
    titles = [spec.title for spec in all_pages()]
    assert len(titles) == len(set(titles))
    for spec in PAGES:
        assert spec.section in SECTIONS, spec
        assert spec.icon.startswith(":material/"), spec
        assert 10 < len(spec.teaser) < 140, spec
    assert all_pages()[0] == HOME


def test_script_paths_are_relative_to_main():
    for spec in all_pages():
        assert (Path(__file__).resolve().parents[2] / "app" / spec.script).resolve().exists()


def test_section_pages_are_the_registry_grouped():
    grouped = [spec for section in SECTIONS for spec in section_pages(section)]
    assert sorted(grouped, key=PAGES.index) == list(PAGES) and len(grouped) == len(PAGES)
    assert all(spec.section == section for section in SECTIONS for spec in section_pages(section))
    assert section_pages("no such section") == ()
