ARG BASE
FROM ${BASE}
RUN echo worker > /worker
COPY app.txt /worker.txt
