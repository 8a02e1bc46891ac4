# syntax=docker/dockerfile:1
# What gcr.io/distroless/cc-debian12:nonroot holds, made from Debian's packages: glibc, libgcc,
# libstdc++, CA certificates, time zones, netbase, and the users root, nobody and nonroot (65532);
# no shell, no package manager. For building docker/operator.Dockerfile where gcr.io is out of
# reach (`cargo xtask images` does, offline); users need not build it:
#   docker build -f docker/distroless-cc.Dockerfile -t gcr.io/distroless/cc-debian12:nonroot .

FROM docker.io/library/debian:bookworm-slim AS packages
# The packages' own files, unpacked as distroless does (no maintainer scripts run), plus the CA
# bundle that ca-certificates' script generates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && mkdir -p /rootfs /tmp/debs && cd /tmp/debs \
    && apt-get download libc6 libgcc-s1 libstdc++6 libgomp1 libssl3 tzdata netbase base-files media-types \
    && for deb in *.deb; do dpkg-deb -x "$deb" /rootfs; done \
    && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot /rootfs/root \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
    && chmod 1777 /rootfs/tmp && chmod 0700 /rootfs/root && chown 65532:65532 /rootfs/home/nonroot \
    && printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
    && printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' > /rootfs/etc/group \
    && printf 'hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n' > /rootfs/etc/nsswitch.conf \
    && find /rootfs/usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete \
    && rm -rf /rootfs/usr/share/man /rootfs/usr/share/lintian /rootfs/usr/share/info /var/lib/apt/lists/*

FROM scratch
COPY --from=packages /rootfs /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532
WORKDIR /home/nonroot
