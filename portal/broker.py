"""The embedded default's broker: kombu's filesystem transport, made safe for several
worker processes on one folder (bin/dev run starts three).

kombu's `_put` creates the message file under its final name and then writes it, and `_get`
of another process may take the file in between and read nothing (the worker dies with a
JSONDecodeError). Here a message is written under a name no reader matches and renamed
into place, and a reader claims a file by renaming it within the same folder tree (atomic;
only one claimer wins), instead of moving it to the system's temporary folder, which may
be another file system (a copy that two readers could both make).
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

PARTIAL_PREFIX = "."


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"{PARTIAL_PREFIX}{name}.partial")
        with open(partial, "wb") as stream:
            stream.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)

    def _get(self, queue):
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.startswith(PARTIAL_PREFIX) or name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, f"{name}.{uuid.uuid4().hex}")
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue  # another worker claimed it first
            with open(claimed, "rb") as stream:
                payload = stream.read()
            os.remove(claimed)
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
