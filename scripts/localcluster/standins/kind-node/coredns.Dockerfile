# CoreDNS for the kind node stand-in: the binary built here, started as the official image starts it (/coredns;
# kubeadm's Deployment passes only arguments).
FROM scratch
COPY binary /coredns
ENTRYPOINT ["/coredns"]
