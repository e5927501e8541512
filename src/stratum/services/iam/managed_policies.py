"""The AWS managed policies Stratum ships. Documents are scoped to the services Stratum serves;
AWS's own versions list many more services, which would grant nothing more here."""

from __future__ import annotations

import json

_READ_ONLY_ACTIONS = ["sagemaker:Describe*", "sagemaker:List*", "sagemaker:Search", "sagemaker:GetSearchSuggestions",
                      "s3:Get*", "s3:List*", "s3:Head*", "iam:Get*", "iam:List*", "sts:GetCallerIdentity",
                      "ram:Get*", "ram:List*", "events:Describe*", "events:List*", "kms:Describe*", "kms:List*",
                      "kms:Get*", "organizations:Describe*", "organizations:List*",
                      "lambda:Get*", "lambda:List*"]


def _doc(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


AWS_MANAGED: dict[str, tuple[str, str]] = {
    # name -> (description, document)
    "AdministratorAccess": ("Provides full access to AWS services and resources.",
                            _doc({"Effect": "Allow", "Action": "*", "Resource": "*"})),
    "ReadOnlyAccess": ("Provides read-only access to AWS services and resources.",
                       _doc({"Effect": "Allow", "Action": _READ_ONLY_ACTIONS, "Resource": "*"})),
    "IAMFullAccess": ("Provides full access to IAM.",
                      _doc({"Effect": "Allow", "Action": ["iam:*", "organizations:Describe*", "organizations:List*"],
                            "Resource": "*"})),
    "AmazonS3FullAccess": ("Provides full access to all buckets.",
                           _doc({"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"})),
    "AmazonS3ReadOnlyAccess": ("Provides read only access to all buckets.",
                               _doc({"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Describe*"],
                                     "Resource": "*"})),
    "AmazonSageMakerFullAccess": (
        "Provides full access to Amazon SageMaker.",
        _doc({"Effect": "Allow", "Action": ["sagemaker:*", "events:*", "kms:DescribeKey", "kms:ListAliases",
                                            "ram:*", "sts:GetCallerIdentity", "iam:GetRole", "iam:ListRoles"],
              "Resource": "*"},
             {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                            "s3:AbortMultipartUpload"],
              "Resource": ["arn:aws:s3:::*SageMaker*", "arn:aws:s3:::*Sagemaker*", "arn:aws:s3:::*sagemaker*"]},
             {"Effect": "Allow", "Action": ["s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket",
                                            "s3:ListAllMyBuckets", "s3:GetBucketCors", "s3:PutBucketCors"],
              "Resource": "*"},
             {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/*",
              "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
             # As in AWS's document: pipelines' Lambda steps invoke functions named for SageMaker.
             {"Effect": "Allow", "Action": "lambda:InvokeFunction",
              "Resource": ["arn:aws:lambda:*:*:function:*SageMaker*", "arn:aws:lambda:*:*:function:*sagemaker*",
                           "arn:aws:lambda:*:*:function:*Sagemaker*", "arn:aws:lambda:*:*:function:*LabelingFunction*"]},
             # What a job's role needs of services Stratum does not serve, as in AWS's document: the
             # SageMaker SDK 3.x simulates them (SimulatePrincipalPolicy) before it starts a job.
             {"Effect": "Allow", "Action": [
                 "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData",
                 "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics", "cloudwatch:PutMetricAlarm",
                 "cloudwatch:PutMetricData", "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                 "ec2:CreateVpcEndpoint", "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
                 "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables",
                 "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcEndpoints", "ec2:DescribeVpcs",
                 "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CreateRepository", "ecr:Describe*",
                 "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer", "ecr:StartImageScan",
                 "logs:CreateLogDelivery", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DeleteLogDelivery",
                 "logs:Describe*", "logs:GetLogDelivery", "logs:GetLogEvents", "logs:ListLogDeliveries",
                 "logs:PutLogEvents", "logs:PutResourcePolicy", "logs:UpdateLogDelivery"],
              "Resource": "*"})),
    "AWSLambda_FullAccess": ("Grants full access to AWS Lambda service.",
                             _doc({"Effect": "Allow", "Action": ["lambda:*", "logs:DescribeLogGroups",
                                                                 "logs:DescribeLogStreams", "logs:GetLogEvents",
                                                                 "logs:FilterLogEvents", "iam:GetRole", "iam:ListRoles"],
                                   "Resource": "*"},
                                  {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
                                   "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}})),
    "AWSLambda_ReadOnlyAccess": ("Grants read-only access to AWS Lambda service.",
                                 _doc({"Effect": "Allow", "Action": ["lambda:Get*", "lambda:List*"], "Resource": "*"})),
    "AWSLambdaBasicExecutionRole": ("Provides write permissions to CloudWatch Logs.",
                                    _doc({"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                                       "logs:PutLogEvents"], "Resource": "*"})),
    "AWSLambdaRole": ("Default policy for AWS Lambda service role.",
                      _doc({"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"})),
    "AmazonSageMakerReadOnly": ("Provides read only access to Amazon SageMaker.",
                                _doc({"Effect": "Allow",
                                      "Action": ["sagemaker:Describe*", "sagemaker:List*", "sagemaker:Search",
                                                 "sagemaker:GetSearchSuggestions"], "Resource": "*"})),
}


def managed_policy_arn(name: str) -> str:
    return f"arn:aws:iam::aws:policy/{name}"
