"""Development aids the product runs only on request: crash injection for the fault tests."""
