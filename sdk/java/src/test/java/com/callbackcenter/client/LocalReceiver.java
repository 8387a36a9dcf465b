package com.callbackcenter.client;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/** A receiver on a free local port that records every request it gets. */
final class LocalReceiver implements AutoCloseable {
    record Request(String method, String path, String query, Map<String, List<String>> headers, byte[] body) {
        String header(String name) {
            return headers.entrySet().stream()
                    .filter(e -> e.getKey().equalsIgnoreCase(name))
                    .map(e -> e.getValue().get(0))
                    .findFirst().orElse(null);
        }

        String bodyText() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    private final HttpServer server;
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    private volatile Function<Request, String> answer = request -> "ok";

    LocalReceiver() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", exchange -> {
            Request request = new Request(exchange.getRequestMethod(), exchange.getRequestURI().getPath(),
                    exchange.getRequestURI().getRawQuery(), exchange.getRequestHeaders(),
                    exchange.getRequestBody().readAllBytes());
            requests.add(request);
            byte[] body = answer.apply(request).getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        server.start();
    }

    String url(String path) {
        return "http://127.0.0.1:" + server.getAddress().getPort() + path;
    }

    void answer(Function<Request, String> answer) {
        this.answer = answer;
    }

    List<Request> requests() {
        return requests;
    }

    /** Waits until {@code n} requests arrived, or fails. */
    List<Request> waitFor(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while (requests.size() < n && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        if (requests.size() < n) {
            throw new AssertionError("got " + requests.size() + " request(s), not " + n);
        }
        return requests;
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
