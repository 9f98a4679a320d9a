"""The local FCM service of ``bench.push`` in a process of its own (as a real provider is
elsewhere): ``python -m bench._push_service DIR`` writes ``DIR/service.json`` (its URL, the
service account file, the CA) once it listens, then appends one line per accepted push to
``DIR/received.jsonl``: ``[messageId, time.time() when accepted]``. It runs until killed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.support.push_servers import FcmServer, make_tls, write_service_account
from tests.support.push_servers.threaded import Threaded


def main() -> int:
    root = Path(sys.argv[1])
    tls = make_tls(root)
    with Threaded(FcmServer(tls)) as fcm:
        account = write_service_account(root, fcm.server.token_uri)
        fcm.call(lambda s: s.trust(account))
        info = {"url": fcm.server.url, "credentials": account.path, "ca": tls.ca_file}
        (root / "service.json.tmp").write_text(json.dumps(info))
        (root / "service.json.tmp").rename(root / "service.json")
        written = 0
        with (root / "received.jsonl").open("a") as out:
            while True:
                time.sleep(0.2)
                got = fcm.server.messages[written:]
                for m in got:
                    out.write(json.dumps([m.message["data"]["messageId"], m.received_at]) + "\n")
                out.flush()
                written += len(got)


if __name__ == "__main__":
    sys.exit(main())
