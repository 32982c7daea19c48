"""The embedded broker under several processes: every message delivered exactly once, and
never read half-written (kombu's own filesystem transport fails both)."""

import multiprocessing

import pytest
from kombu import Connection

from portal.broker import Transport

pytestmark = pytest.mark.slow  # a minute of large messages: what makes kombu's race show

MESSAGES_PER_PRODUCER = 40
PRODUCERS = 3
CONSUMERS = 2
BODY = [{"line": n, "text": "x" * 40} for n in range(20000)]


def _options(folder) -> dict:
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
    }


def _produce(folder, producer: int) -> None:
    with Connection(transport=Transport, transport_options=_options(folder)) as connection:
        queue = connection.SimpleQueue("jobs")
        for number in range(MESSAGES_PER_PRODUCER):
            # A large body: kombu's own transport creates the file before it encodes and
            # writes the body, and a reader that takes the file meanwhile reads nothing.
            queue.put({"producer": producer, "number": number, "body": BODY})
        queue.close()


def _consume(folder, results, expected: int) -> None:
    with Connection(transport=Transport, transport_options=_options(folder)) as connection:
        queue = connection.SimpleQueue("jobs")
        while len(results) < expected:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                continue
            results.append((message.payload["producer"], message.payload["number"]))
            message.ack()
        queue.close()


def test_concurrent_producers_and_consumers_deliver_each_message_once(tmp_path):
    for sub in ("queue", "processed"):
        (tmp_path / sub).mkdir()
    expected = MESSAGES_PER_PRODUCER * PRODUCERS
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        results = manager.list()
        consumers = [
            context.Process(target=_consume, args=(tmp_path, results, expected))
            for _ in range(CONSUMERS)
        ]
        producers = [context.Process(target=_produce, args=(tmp_path, n)) for n in range(PRODUCERS)]
        for process in consumers + producers:
            process.start()
        for process in producers:
            process.join(60)
        for process in consumers:
            process.join(60)
            if process.is_alive():
                process.kill()
        delivered = list(results)
    assert len(delivered) == expected
    assert set(delivered) == {
        (p, n) for p in range(PRODUCERS) for n in range(MESSAGES_PER_PRODUCER)
    }
    assert all(process.exitcode == 0 for process in consumers + producers)
