# The kindnetd stand-in (./kindnetd says what it does and what it leaves out).
FROM standin/debian:bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl jq iptables \
    && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 kindnetd /usr/local/bin/kindnetd
ENTRYPOINT ["/usr/local/bin/kindnetd"]
