"""helm's pre-delete hook: delete the chart's sample PromDemo and wait until it is gone.

    python -c "$(cat delete_sample.py)" NAMESPACE NAME TIMEOUT_SECONDS

Run by the hook Pod of templates/sample-cleanup.yaml with the operator's image (which
has the kubernetes client) before helm deletes the operator: the operator is
still there to remove its finalizer, so the PromDemo and its children go
instead of staying stuck. Exit 0 when it is gone (or never was), 1 after the
timeout with the reason on stderr.
"""

import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "promdemo.dev", "v1alpha1", "promdemos"


def main(namespace: str, name: str, timeout: float) -> int:
    config.load_incluster_config()
    api = client.CustomObjectsApi()
    key = f"PromDemo {namespace}/{name}"
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            print(f"{key}: not found, nothing to delete")
            return 0
        raise
    print(f"{key}: deleting; waiting up to {timeout:g}s for the operator's finalizer")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                print(f"{key}: deleted")
                return 0
            raise
        time.sleep(1)
    print(
        f"{key} still exists after {timeout:g}s: its finalizer is the operator's; is the"
        " operator running? (kubectl get deploy -A -l app.kubernetes.io/name=promdemo-operator)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
