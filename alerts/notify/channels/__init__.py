"""SMS for the notifier: text encoding (pure), the gateway port, and the Kannel and SMPP adapters,
and the WeCom/DingTalk group-robot webhook (webhook.py)."""
