package smlocal

import (
	"fmt"
	"net/http"
)

// Exception names of the Secrets Manager API.
const (
	excResourceNotFound     = "ResourceNotFoundException"
	excInvalidRequest       = "InvalidRequestException"
	excInvalidParameter     = "InvalidParameterException"
	excResourceExists       = "ResourceExistsException"
	excLimitExceeded        = "LimitExceededException"
	excInternal             = "InternalServiceError"
	excInvalidNextToken     = "InvalidNextTokenException"
	excUnknownOperation     = "UnknownOperationException"
	excSerialization        = "SerializationException"
	excValidation           = "ValidationException"
	excAccessDenied         = "AccessDeniedException"
	msgSecretNotFound       = "Secrets Manager can't find the specified secret."
	msgMarkedForDeletion    = "You can't perform this operation on the secret because it was marked for deletion."
	msgPreviousRotation     = "A previous rotation isn't complete. That rotation will be reattempted."
	msgNoRotationFunction   = "No Lambda rotation function ARN is associated with this secret."
	msgCannotInvoke         = "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."
	msgInvalidNextToken     = "The NextToken value is invalid."
	msgBothValues           = "You can't specify both a binary secret value and a string secret value in the same secret."
	msgStageVersionMismatch = "You provided a VersionStage that is not associated to the provided VersionId."
)

// apiError is an error the wire layer turns into {"__type","message"}.
type apiError struct {
	Type    string
	Message string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

// status is the HTTP status of the error: 500 for InternalServiceError, 400 otherwise.
func (e *apiError) status() int {
	if e.Type == excInternal {
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func errorf(typ, format string, args ...any) *apiError {
	return &apiError{Type: typ, Message: fmt.Sprintf(format, args...)}
}

func notFound() *apiError { return &apiError{Type: excResourceNotFound, Message: msgSecretNotFound} }

func markedForDeletion() *apiError {
	return &apiError{Type: excInvalidRequest, Message: msgMarkedForDeletion}
}

func valueNotFoundForStage(stage string) *apiError {
	return errorf(excResourceNotFound, "Secrets Manager can't find the specified secret value for staging label: %s", stage)
}

func valueNotFoundForVersion(id string) *apiError {
	return errorf(excResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s", id)
}
