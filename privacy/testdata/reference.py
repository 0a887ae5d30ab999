#!/usr/bin/python3
"""Independent reference values for the privacy package's tests.

Run from the repository root with Debian's Python and packages
(apt-get install python3-mpmath python3-cryptography):

    /usr/bin/python3 privacy/testdata/reference.py > privacy/testdata/reference.json

It re-implements, from their documented definitions and without looking at
the Go code:
  * the canonical release encoding (privacy.Release.Encode's doc comment),
    the stream seed HMAC-SHA256(key, encoding) and the AES-256-CTR keystream
    (zero IV) with the `cryptography` package, and the key fingerprint;
  * the zCDP -> (eps, delta) conversion of Canonne, Kamath & Steinke 2020
    (Corollary 13), in 60-digit arithmetic with mpmath;
  * the variance and fourth moment of the discrete Gaussian and the discrete
    Laplace, by summing their series in 60-digit arithmetic.
"""

import hashlib
import hmac
import json
import struct
from fractions import Fraction

import mpmath as mp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

mp.mp.dps = 60

SAMPLER_VERSION = "verity-dp-cks20-aesctr-v1"
TEST_KEY = bytes(range(32))  # test-only key, also in the Go tests


def encode_release(r):
    if r["kind"] == "discrete_gaussian":
        pname = "sigma2"
    else:
        pname = "scale"
    p = Fraction(r["param"])
    fields = [SAMPLER_VERSION, r["analysis"], r["spec_hash"], r["input_digest"],
              r["cohort"], r["variant"], r["metric"], r["statistic"], r["kind"],
              pname, "%d/%d" % (p.numerator, p.denominator)]
    out = b"verity/privacy/release\x00" + struct.pack(">I", len(fields))
    for f in fields:
        fb = f.encode("utf-8")
        out += struct.pack(">I", len(fb)) + fb
    return out


def keystream(seed, n):
    enc = Cipher(algorithms.AES(seed), modes.CTR(b"\x00" * 16)).encryptor()
    return enc.update(b"\x00" * n) + enc.finalize()


def stream_cases():
    releases = [
        dict(analysis="checkout-v2", spec_hash="sha256:aa11", input_digest="sha256:bb22",
             cohort="power/mobile", variant="treatment", metric="revenue",
             statistic="sum_x", kind="discrete_gaussian", param="9/4"),
        dict(analysis="checkout-v2", spec_hash="sha256:aa11", input_digest="sha256:bb22",
             cohort="*", variant="control", metric="", statistic="n",
             kind="discrete_laplace", param="5"),
    ]
    out = []
    for r in releases:
        enc = encode_release(r)
        seed = hmac.new(TEST_KEY, enc, hashlib.sha256).digest()
        out.append(dict(release=r, encoding_hex=enc.hex(), seed_hex=seed.hex(),
                        keystream_hex=keystream(seed, 80).hex()))
    return out


def fingerprint(key):
    return hashlib.sha256(b"verity/privacy/key-fingerprint\x00" + key).hexdigest()[:16]


def cdp_log_delta(rho, eps):
    rho, eps = mp.mpf(rho), mp.mpf(eps)
    deriv = lambda a: (2 * a - 1) * rho - eps + mp.log(1 - 1 / a)
    lo, hi = mp.mpf(1), (eps + 1) / (2 * rho) + 2
    for _ in range(400):
        mid = (lo + hi) / 2
        if deriv(mid) < 0:
            lo = mid
        else:
            hi = mid
    a = (lo + hi) / 2
    return (a - 1) * (a * rho - eps) + a * mp.log(1 - 1 / a) - mp.log(a - 1)


def cdp_delta(rho, eps):
    return min(mp.exp(cdp_log_delta(rho, eps)), mp.mpf(1))


def cdp_eps(rho, delta):
    lo, hi = mp.mpf(0), mp.mpf(rho) + 2 * mp.sqrt(rho * mp.log(1 / mp.mpf(delta)))
    for _ in range(300):
        mid = (lo + hi) / 2
        if cdp_delta(rho, mid) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


def cdp_rho(eps, delta):
    lo, hi = mp.mpf(0), mp.mpf(eps) + 1
    while cdp_delta(hi, eps) <= delta:
        hi *= 2
    for _ in range(300):
        mid = (lo + hi) / 2
        if cdp_delta(mid, eps) <= delta:
            lo = mid
        else:
            hi = mid
    return lo


def moments(weight):
    """Return (variance, fourth moment) of a symmetric pmf on Z given its
    unnormalised weight w(|z|), summing until the terms vanish."""
    s0, s2, s4 = weight(0), mp.mpf(0), mp.mpf(0)
    z = 1
    while True:
        w = weight(z)
        s0 += 2 * w
        s2 += 2 * z * z * w
        s4 += 2 * z ** 4 * w
        if z ** 4 * w < mp.mpf(10) ** -70 * s4 and z > 5:
            break
        z += 1
    return s2 / s0, s4 / s0


def f(x):
    return float(x)


def main():
    cdp = []
    for rho, eps in [(0.125, 1.0), (0.01, 0.5), (0.5, 3.0), (1e-4, 0.1), (2.0, 8.0)]:
        cdp.append(dict(rho=rho, eps=eps, delta=f(cdp_delta(rho, eps))))
    cdp_eps_cases = []
    for rho, delta in [(0.125, 1e-6), (0.01, 1e-9), (1.0, 1e-5), (1e-4, 1e-6)]:
        cdp_eps_cases.append(dict(rho=rho, delta=delta, eps=f(cdp_eps(rho, delta))))
    cdp_rho_cases = []
    for eps, delta in [(1.0, 1e-6), (0.1, 1e-9), (4.0, 1e-5), (10.0, 1e-8)]:
        cdp_rho_cases.append(dict(eps=eps, delta=delta, rho=f(cdp_rho(eps, delta))))

    dgauss = []
    for s2 in ["1/2", "1", "7/3", "50", "3/1000", "10000"]:
        v = mp.mpf(Fraction(s2).numerator) / Fraction(s2).denominator
        var, m4 = moments(lambda z, v=v: mp.exp(-mp.mpf(z) ** 2 / (2 * v)))
        dgauss.append(dict(sigma2=s2, variance=f(var), m4=f(m4)))
    dlap = []
    for t in ["1", "5/2", "1/3", "100"]:
        v = mp.mpf(Fraction(t).numerator) / Fraction(t).denominator
        var, m4 = moments(lambda z, v=v: mp.exp(-mp.mpf(z) / v))
        dlap.append(dict(scale=t, variance=f(var), m4=f(m4)))

    out = dict(
        test_key_hex=TEST_KEY.hex(),
        fingerprint=fingerprint(TEST_KEY),
        streams=stream_cases(),
        cdp_delta=cdp,
        cdp_eps=cdp_eps_cases,
        cdp_rho=cdp_rho_cases,
        discrete_gaussian=dgauss,
        discrete_laplace=dlap,
    )
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
