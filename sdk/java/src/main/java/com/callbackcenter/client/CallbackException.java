package com.callbackcenter.client;

/** Why a call to callback-center did not give what was asked. */
public class CallbackException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public CallbackException(String message) {
        super(message);
    }

    public CallbackException(String message, Throwable cause) {
        super(message, cause);
    }
}
