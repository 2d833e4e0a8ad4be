"""The SAM hello-world handler, unchanged: apigate runs it with awslambdaric as Lambda does."""
import json


def lambda_handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": f"hello {name}", "path": event["rawPath"]}),
    }
