"""Marking text that core/ returns for a person to read (labels, notes, table headings).

core/ stays language-free: ``N_("per-tensor")`` returns its argument unchanged. It only
tells the catalog extractor (app/i18n_extract.py) that the text is shown on a page, so the
translators see it; the page shows it through app.i18n.tr(), which finds the translation
(an f-string marked this way is catalogued as its template, like the messages core raises).
Does not handle: anything at run time (there is nothing to do).
"""

from __future__ import annotations


def N_(text: str) -> str:   # gettext's name for "mark for translation, translate elsewhere"
    return text
