package com.callbackcenter.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * For receivers: checks that a request came from callback-center, by its
 * Standard Webhooks headers ({@code webhook-id}, {@code webhook-timestamp},
 * {@code webhook-signature}) and the endpoint's {@code whsec_...} secret.
 *
 * <pre>{@code
 * WebhookVerifier verifier = new WebhookVerifier(System.getenv("ORDERS_WEBHOOK_SECRET"));
 * verifier.verify(request.getHeader("webhook-id"), request.getHeader("webhook-timestamp"),
 *         request.getHeader("webhook-signature"), rawBody);
 * }</pre>
 */
public final class WebhookVerifier {
    /** How far the timestamp may be from now, against replays. */
    public static final long TOLERANCE_SECONDS = 5 * 60;

    private final byte[] key;

    public WebhookVerifier(String secret) {
        if (secret == null || !secret.startsWith("whsec_")) {
            throw new IllegalArgumentException("the secret must be whsec_ followed by base64");
        }
        this.key = Base64.getDecoder().decode(secret.substring("whsec_".length()));
    }

    /** Thrown when a request does not verify; the message says why. */
    public static final class InvalidSignature extends CallbackException {
        private static final long serialVersionUID = 1L;

        public InvalidSignature(String message) {
            super(message);
        }
    }

    /** Verifies against the current time. */
    public void verify(String id, String timestamp, String signatureHeader, byte[] body) {
        verify(id, timestamp, signatureHeader, body, Instant.now());
    }

    public void verify(String id, String timestamp, String signatureHeader, byte[] body, Instant now) {
        if (id == null || id.isEmpty() || timestamp == null || signatureHeader == null) {
            throw new InvalidSignature("a webhook-id, webhook-timestamp or webhook-signature header is missing");
        }
        long seconds;
        try {
            seconds = Long.parseLong(timestamp.trim());
        } catch (NumberFormatException e) {
            throw new InvalidSignature("webhook-timestamp is not a number");
        }
        if (Math.abs(now.getEpochSecond() - seconds) > TOLERANCE_SECONDS) {
            throw new InvalidSignature("the timestamp is more than five minutes from now");
        }
        byte[] expected = ("v1," + sign(id, seconds, body)).getBytes(StandardCharsets.UTF_8);
        for (String given : signatureHeader.trim().split("\\s+")) {
            if (MessageDigest.isEqual(expected, given.getBytes(StandardCharsets.UTF_8))) {
                return;
            }
        }
        throw new InvalidSignature("no signature matches");
    }

    /** The base64 HMAC-SHA256 over {@code id.timestamp.body}. */
    public String sign(String id, long timestamp, byte[] body) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            mac.update((id + "." + timestamp + ".").getBytes(StandardCharsets.UTF_8));
            return Base64.getEncoder().encodeToString(mac.doFinal(body));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is part of every Java runtime", e);
        }
    }
}
