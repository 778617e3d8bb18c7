"""TAP output shared by the packaging suites: numbered results, the plan
at the end (done), and a bail-out that still prints a plan."""
import sys

count = 0
failed = 0


def ok(cond, desc, detail=''):
    global count, failed
    count += 1
    if cond:
        print(f'ok {count} - {desc}')
    else:
        failed += 1
        print(f'not ok {count} - {desc}')
        for line in (detail or '').rstrip().splitlines()[-40:]:
            print('#   ' + line)
    sys.stdout.flush()
    return cond


def done():
    """Prints the plan; the exit status for the results so far."""
    print(f'1..{count}')
    sys.stdout.flush()
    return 1 if failed else 0


def bail(desc, detail=''):
    ok(False, desc, detail)
    sys.exit(done() or 1)


def read(path):
    """A file's text, or '' when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ''
