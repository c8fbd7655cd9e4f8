package ecr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

// TaggedImage is one tag of a repository and the manifest digest it names.
type TaggedImage struct{ Tag, Digest string }

// ListTags lists every tag of repository (in the registry of account, "" for
// the caller's own) with the digest it names: ListImages answers 1000 tags a
// call, digests included.
func (c *Client) ListTags(ctx context.Context, account, repository string) ([]TaggedImage, error) {
	in := &awsecr.ListImagesInput{
		RepositoryName: aws.String(repository),
		RegistryId:     registryID(account),
		Filter:         &types.ListImagesFilter{TagStatus: types.TagStatusTagged},
		MaxResults:     aws.Int32(1000),
	}
	var out []TaggedImage
	for p := awsecr.NewListImagesPaginator(c.api, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain(operation{"list the images of ECR repository " + repository, "ecr:ListImages"}, err)
		}
		for _, id := range page.ImageIds {
			if id.ImageTag != nil {
				out = append(out, TaggedImage{Tag: aws.ToString(id.ImageTag), Digest: aws.ToString(id.ImageDigest)})
			}
		}
	}
	return out, nil
}

// TagFailure is a tag ECR did not remove, with its reason.
type TagFailure struct {
	Tag    string
	Code   types.ImageFailureCode
	Reason string
}

// deleteBatch is BatchDeleteImage's limit of image ids per call.
const deleteBatch = 100

// DeleteTags removes tags from repository with BatchDeleteImage: ECR removes
// the tag, and the image only with its last tag, so an image another tag
// names stays. It returns the tags removed and those ECR refused, each with
// ECR's reason; err is set when a call failed as a whole.
func (c *Client) DeleteTags(ctx context.Context, account, repository string, tags []string) (removed []string, failed []TagFailure, err error) {
	for start := 0; start < len(tags); start += deleteBatch {
		in := &awsecr.BatchDeleteImageInput{RepositoryName: aws.String(repository), RegistryId: registryID(account)}
		for _, t := range tags[start:min(start+deleteBatch, len(tags))] {
			in.ImageIds = append(in.ImageIds, types.ImageIdentifier{ImageTag: aws.String(t)})
		}
		out, err := c.api.BatchDeleteImage(ctx, in)
		if err != nil {
			return removed, failed, explain(operation{"delete cache tags from ECR repository " + repository, "ecr:BatchDeleteImage"}, err)
		}
		for _, id := range out.ImageIds {
			removed = append(removed, aws.ToString(id.ImageTag))
		}
		for _, f := range out.Failures {
			var tag string
			if f.ImageId != nil {
				tag = aws.ToString(f.ImageId.ImageTag)
			}
			failed = append(failed, TagFailure{Tag: tag, Code: f.FailureCode, Reason: aws.ToString(f.FailureReason)})
		}
	}
	return removed, failed, nil
}

// ErrImageNotFound means the tag names no image.
var ErrImageNotFound = errors.New("image not found")

// PushedAt is when the image tag names was pushed, as ECR records it: the
// first push of that manifest; putting the same manifest again, under any tag,
// leaves the date as it was.
func (c *Client) PushedAt(ctx context.Context, account, repository, tag string) (time.Time, error) {
	out, err := c.api.DescribeImages(ctx, &awsecr.DescribeImagesInput{
		RepositoryName: aws.String(repository),
		RegistryId:     registryID(account),
		ImageIds:       []types.ImageIdentifier{{ImageTag: aws.String(tag)}},
	})
	var notFound *types.ImageNotFoundException
	switch {
	case errors.As(err, &notFound):
		return time.Time{}, fmt.Errorf("describe %s:%s: %w", repository, tag, ErrImageNotFound)
	case err != nil:
		return time.Time{}, explain(operation{"describe image " + repository + ":" + tag, "ecr:DescribeImages"}, err)
	case len(out.ImageDetails) == 0 || out.ImageDetails[0].ImagePushedAt == nil:
		return time.Time{}, fmt.Errorf("describe %s:%s: ECR gave no push date", repository, tag)
	}
	return aws.ToTime(out.ImageDetails[0].ImagePushedAt), nil
}

// registryID is the RegistryId of a call: nil for the caller's own registry.
func registryID(account string) *string {
	if account == "" {
		return nil
	}
	return aws.String(account)
}
