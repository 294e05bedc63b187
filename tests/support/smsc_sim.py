"""SMPP 3.4 SMSC simulator for tests and the demo: the smpp34 server (PyPI) as a child process.

`python -m tests.support.smsc_sim --port N` listens on 127.0.0.1:N, accepts every bind (smpp34 has no
password hook), answers each submit_sm with an 8-hex-digit message id and, when the submit asked
for one (registered_delivery bit 0), sends a delivery receipt deliver_sm (esm_class 0x04, text
"id:<id> sub:001 dlvrd:001 submit date:... done date:... stat:DELIVRD err:000 text:", TLVs
receipted_message_id and message_state). A destination starting with "000" is rejected with
ESME_RINVDSTADR, to test a refusal.

stdout: one JSON object per line: {"event": "listening" | "bound" | "submit" | "unbound" | "mo_sent"}.
stdin: one JSON command per line: {"cmd": "mo", "from": ..., "to": ..., "text": ...} delivers an MO
(UCS-2 if not ASCII) to every bound session; {"cmd": "unbind"} unbinds every session from the SMSC side.

Known smpp34 1.5 limits (COMPONENTS.md §2): it usually closes the socket on unbind without an
unbind_resp, and Server.stop() must run inside the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import threading
import time

import smpp34


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class Simulator:
    def __init__(self, port: int):
        self.port = port
        self.sessions: dict[str, smpp34.Esme] = {}
        self.ids = itertools.count(1000)
        self.tasks: set[asyncio.Future] = set()

    def _keep(self, fut) -> None:
        fut = asyncio.ensure_future(fut)  # smpp34 returns running Futures, not coroutines
        self.tasks.add(fut)
        fut.add_done_callback(self.tasks.discard)

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        server = smpp34.Server(host="127.0.0.1", port=self.port, system_id="HAZSMSC")
        await server.start()
        threading.Thread(target=self._stdin, daemon=True).start()
        emit(event="listening", port=self.port)
        while True:
            ev = await server.next()
            if isinstance(ev, smpp34.Esme):
                self.sessions[ev.session_id] = ev
                emit(event="bound", session=ev.session_id, system_id=ev.system_id)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                self._submit(ev)
            elif isinstance(ev, smpp34.Unbound):
                self.sessions.pop(ev.session_id, None)
                emit(event="unbound", session=ev.session_id)

    def _submit(self, ev: smpp34.SubmitSmEvent) -> None:
        record = dict(
            event="submit",
            session=ev.session_id,
            src=ev.source_addr,
            dst=ev.destination_addr,
            dcs=ev.data_coding,
            esm=ev.esm_class,
            reg=ev.registered_delivery,
            sm=ev.short_message.hex(),
            tlvs={f"{t.tag:#06x}": t.value.hex() for t in ev.tlvs},
        )
        if ev.destination_addr.startswith("000"):
            ev.reject(smpp34.ESME_RINVDSTADR)
            emit(**record, rejected=smpp34.ESME_RINVDSTADR)
            return
        mid = f"{next(self.ids):08X}"
        ev.accept(message_id=mid)
        emit(**record, id=mid)
        esme = self.sessions.get(ev.session_id)
        if ev.registered_delivery & 1 and esme is not None:
            ts = time.strftime("%y%m%d%H%M")
            text = f"id:{mid} sub:001 dlvrd:001 submit date:{ts} done date:{ts} stat:DELIVRD err:000 text:"
            self._keep(
                esme.deliver_sm(
                    ev.source_addr,
                    text.encode(),
                    source_addr=ev.destination_addr,
                    esm_class=0x04,
                    tlvs=[
                        smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, mid.encode() + b"\0"),
                        smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, b"\x02"),
                    ],
                )
            )

    async def _mo(self, sender: str, receiver: str, text: str) -> None:
        body, dcs = (text.encode(), 0) if text.isascii() else (text.encode("utf-16-be"), 8)
        statuses = []
        for esme in list(self.sessions.values()):
            resp = await esme.deliver_sm(
                receiver, body, source_addr=sender, data_coding=dcs, source_addr_ton=1, source_addr_npi=1
            )
            statuses.append(resp.command_status)
        emit(event="mo_sent", text=text, statuses=statuses)

    def _stdin(self) -> None:
        for line in sys.stdin:
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            if cmd.get("cmd") == "mo":
                asyncio.run_coroutine_threadsafe(self._mo(cmd["from"], cmd["to"], cmd["text"]), self.loop)
            elif cmd.get("cmd") == "unbind":
                asyncio.run_coroutine_threadsafe(self._unbind(), self.loop)

    async def _unbind(self) -> None:
        for sid, esme in list(self.sessions.items()):
            try:
                await esme.unbind()
                emit(event="unbind_sent", session=sid, ok=True)
            except Exception as e:  # reported, the test decides
                emit(event="unbind_sent", session=sid, ok=False, error=repr(e))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Simulator(args.port).main())


if __name__ == "__main__":
    main()
