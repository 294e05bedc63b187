"""How alarm texts leave hazmon: the channel port (gateway.py), its SMS adapters (kannel.py, smpp.py, with
the pure text encoding in encoding.py) and the WeCom/DingTalk group-robot adapter (webhook.py)."""
