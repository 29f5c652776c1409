"""The HPC tier's relay behind TLS (``wss://``), with a producer and a consumer through it.

The relay only forwards sealed frames: every token is already AES-256-GCM encrypted end to end
under a key the relay never sees. TLS on top hides the channel metadata (ids, frame sizes,
tokens in the handshake) from the network. Two ways to deploy it:

1. TLS in the relay itself, as here: ``RelayServer(secret, ssl_context=...)`` with your
   certificate (e.g. from your institution's CA or Let's Encrypt).
2. ``stream relay --host 127.0.0.1`` behind a TLS-terminating reverse proxy (nginx, Caddy,
   HAProxy) that forwards WebSocket upgrades for ``/v1/channel/`` and ``/healthz``; pass
   ``client_address_header="X-Forwarded-For"`` to ``RelayServer`` so per-client limits count
   real clients, not the proxy.

Clients verify the relay's certificate with the system's trust store; this example makes a
throw-away certificate authority for 127.0.0.1 and points ``SSL_CERT_FILE`` at it.
"""

import asyncio
import datetime
import ipaddress
import os
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from langchain_stream.relay import ConsumerClient, ProducerClient, RelayServer
from langchain_stream.relay.protocol import new_channel_key
from langchain_stream.relay.tokens import mint_channel_tokens, new_channel_id

SECRET = os.urandom(32).hex()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (stand-ins for your real ones)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay.pem", directory / "relay.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def main() -> None:
    directory = Path(tempfile.mkdtemp())
    cert_path, key_path = self_signed_certificate(directory)
    os.environ["SSL_CERT_FILE"] = str(cert_path)  # clients trust our throw-away CA
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    async with RelayServer(SECRET, host="127.0.0.1", port=0, ssl_context=context) as relay:
        print(f"relay at {relay.url}")
        channel, key = new_channel_id(), new_channel_key()
        tokens = mint_channel_tokens(SECRET, channel)

        def worker() -> None:  # what the HPC worker does on the compute node
            with ProducerClient(relay.url, channel, tokens.producer, key) as producer:
                for word in ["tokens", "cross", "the", "relay", "sealed", "and", "over", "TLS"]:
                    producer.send(word + " ")
                producer.finish({"output_tokens": 8})

        thread = threading.Thread(target=worker)
        thread.start()
        async with ConsumerClient(relay.url, channel, tokens.consumer, key) as consumer:
            text = "".join([token async for token in consumer])
        thread.join()
        print(f"received over wss: {text.strip()!r}; usage {consumer.usage}")


if __name__ == "__main__":
    asyncio.run(main())
