# A Kubernetes component for the kind node stand-in: one static Go binary built here, on its PATH (kubeadm's static
# pods name the command, not a path). COMMAND is its name in the image.
FROM scratch
ARG COMMAND
COPY binary /usr/local/bin/${COMMAND}
ENV PATH=/usr/local/bin:/usr/bin:/bin
