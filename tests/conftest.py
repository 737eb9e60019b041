"""Test-session ordering.

eSpeak NG is one process-global C library whose intonation state carries from one synthesis to the
next (shown in tests/test_espeak.py), so the caller voice the demo test synthesises depends on what
the process spoke before it; PocketSphinx then hears a slightly different phone number. The demo
test is an end-to-end check of recognised speech, so it runs first, on a fresh engine, exactly as
`offhook demo` does in its own process.
"""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: 0 if item.path.name == "test_demo.py" else 1)  # stable: order kept
