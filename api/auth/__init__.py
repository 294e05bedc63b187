"""Authentication and authorisation (issue 5, item 2): model, passwords, store, dependencies, router."""
