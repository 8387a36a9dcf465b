package com.callbackcenter.client;

import java.util.List;

/**
 * The server answered with an error: {@link #status()} is the HTTP status and
 * {@link #code()} the API's stable error code ({@code not_found},
 * {@code validation_failed}, {@code insufficient_scope}...).
 */
public class ApiException extends CallbackException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String code;
    private final String detail;
    private final transient List<Problem.FieldError> fieldErrors;

    public ApiException(Problem problem) {
        super(problem.status() + " " + problem.code() + ": " + problem.detail());
        this.status = problem.status();
        this.code = problem.code();
        this.detail = problem.detail();
        this.fieldErrors = problem.errors() == null ? List.of() : problem.errors();
    }

    public int status() {
        return status;
    }

    public String code() {
        return code;
    }

    public String detail() {
        return detail;
    }

    /** For {@code validation_failed}: each invalid field and why. */
    public List<Problem.FieldError> fieldErrors() {
        return fieldErrors;
    }
}
