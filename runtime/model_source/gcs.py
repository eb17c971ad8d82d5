"""gs:// models through google-cloud-storage: Application Default Credentials (Workload Identity
in a pod), `STORAGE_EMULATOR_HOST` for an emulator; the client streams the object in chunks and
checks its own CRC32C."""

from __future__ import annotations

import warnings
from pathlib import Path

from inferstack.contract.model_uris import RemoteModel
from inferstack.runtime.model_source.errors import FinalFailure, TransientFailure

with warnings.catch_warnings():
    # google-api-core warns about the interpreter's end-of-life date at import; not actionable.
    warnings.simplefilter("ignore", FutureWarning)
    from google.api_core import exceptions as google_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import storage


def download_gcs(remote: RemoteModel, destination: Path) -> None:
    """Write `gs://BUCKET/OBJECT` to `destination`."""
    try:
        client = storage.Client()
        client.bucket(remote.container).blob(remote.path).download_to_filename(str(destination))
    except auth_exceptions.DefaultCredentialsError as error:
        raise FinalFailure(
            f"no Google credentials ({error})",
            "run the pod with the pool's Kubernetes service account (Workload Identity)",
        ) from None
    except (google_exceptions.Forbidden, google_exceptions.Unauthorized) as error:
        raise FinalFailure(
            f"Cloud Storage answered {error.code} {error.message}",
            f"grant the pool's service account roles/storage.objectViewer on "
            f"gs://{remote.container} (the GCP component does for model.uri)",
        ) from None
    except google_exceptions.NotFound as error:
        raise FinalFailure(
            f"Cloud Storage answered 404 {error.message}",
            "check the bucket and object (gcloud storage ls the URI)",
        ) from None
    except (google_exceptions.TooManyRequests, google_exceptions.ServerError) as error:
        raise TransientFailure(f"Cloud Storage answered {error.code} {error.message}") from None
    except google_exceptions.GoogleAPICallError as error:
        raise FinalFailure(f"Cloud Storage answered {error.code} {error.message}") from None
    except (auth_exceptions.TransportError, OSError) as error:
        raise TransientFailure(f"cannot reach Cloud Storage ({error})") from None
