# kube-proxy for the kind node stand-in: it programs iptables, so it runs on Debian with iptables and conntrack.
FROM standin/debian:bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables conntrack \
    && rm -rf /var/lib/apt/lists/*
COPY binary /usr/local/bin/kube-proxy
