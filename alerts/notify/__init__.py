"""Notifications: who is on duty (rosters), who is told when (escalation, routing), what the text says
(render, plan), the exactly-once SMS outbox, replies and acknowledgement by SMS, and the channels
that carry the texts (channels/: the gateway port, Kannel, SMPP and the group-chat robots)."""
