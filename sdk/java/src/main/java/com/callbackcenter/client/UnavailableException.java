package com.callbackcenter.client;

/**
 * The server could not be reached, or stayed unavailable (503, 429), until the
 * retry deadline. Nothing is known to have been stored, except by a submit,
 * whose idempotency key makes trying it again safe.
 */
public class UnavailableException extends CallbackException {
    private static final long serialVersionUID = 1L;

    private final int attempts;

    public UnavailableException(String message, int attempts, Throwable cause) {
        super(message + " (after " + attempts + " tries)", cause);
        this.attempts = attempts;
    }

    public int attempts() {
        return attempts;
    }
}
