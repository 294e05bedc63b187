"""SMS for the notifier: text encoding (pure), the gateway port, and the Kannel and SMPP adapters."""
