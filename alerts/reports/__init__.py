"""Daily and shift reports per site and per jurisdiction (issue 13 item 6): model, layout, files."""
