"""Markdown reports as HTML pages: one renderer (markdown-it-py) for every report the toolkit writes."""

from __future__ import annotations


def markdown_page(markdown: str, title: str, style: str, xhtml: bool = False) -> str:
    """Render Markdown as one self-contained HTML page (images are linked, relative to the page).

    CommonMark with GitHub's tables, raw HTML in the Markdown escaped rather than passed through.

    Args:
        markdown: The document.
        title: The page title.
        style: CSS for the page's ``<style>`` element.
        xhtml: Close void tags XHTML-style (``<img />``).
    """
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False, "xhtmlOut": xhtml}).enable("table")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{style}</style></head><body>\n{renderer.render(markdown)}</body></html>\n")
